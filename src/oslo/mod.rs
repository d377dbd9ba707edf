//! The oslo.messaging wire codec, pure: no IO anywhere in this module.
//!
//! - `object`: `zun_object.*` versioned-object primitives and the typed [`Container`].
pub mod object;

pub use object::{Container, ObjectError, ObjectPrimitive};
