//! The domain: zun's compute `Manager` as an [`rpc::Endpoint`](crate::rpc::Endpoint).
//!
//! - Casts that zun runs under the `zun-<uuid>` lock go through the per-UUID
//!   [`executor`], in arrival order; the delivery is settled when the operation ends.
//! - Calls that zun runs inline (show, logs, exec, top, stats, ...) run at once and do
//!   not wait behind a long create.
//! - One file per operation family under `ops/`; the container status rules in
//!   [`populate`]; the Container → Docker mapping in [`mapping`]; image references and
//!   pull policy in [`image_ref`]; resource claims in [`claims`]; what is checked in a
//!   container object from the wire (Docker references, resource bounds) in [`checks`].
pub mod checks;
pub mod claims;
pub mod executor;
pub mod image_ref;
pub mod manager;
pub mod mapping;
pub mod ops;
pub mod populate;
pub mod recovery;
pub mod stats;

pub use executor::Executor;
pub use manager::{Manager, Services};
