//! See lib.rs for this module's role.

pub mod image_ref;
pub mod mapping;
pub mod populate;
pub mod stats;
