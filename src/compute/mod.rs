//! The domain: zun's compute `Manager` as an [`rpc::Endpoint`](crate::rpc::Endpoint).
//!
//! - Casts that zun runs under the `zun-<uuid>` lock go through the per-UUID
//!   [`executor`], in arrival order; the delivery is settled when the operation ends.
//! - Calls that zun runs inline (show, logs, exec, top, stats, ...) run at once and do
//!   not wait behind a long create.
//! - One file per operation family under `ops/`; the container status rules in
//!   [`populate`]; the Container → Docker mapping in [`mapping`]; image references and
//!   pull policy in [`image_ref`]; resource claims in [`claims`]; what is checked in a
//!   container object from the wire (Docker references, resource bounds) in [`checks`];
//!   what the host reports to Placement and when it frees allocations in [`placement`];
//!   Neutron through kuryr in [`network`].
pub mod checks;
pub mod claims;
pub mod executor;
pub mod image_ref;
pub mod manager;
pub mod mapping;
pub mod network;
pub mod ops;
pub mod placement;
pub mod populate;
pub mod recovery;
pub mod settings;
pub mod stats;
pub mod volumes;

pub use executor::Executor;
pub use manager::{Manager, Services};
pub use settings::ComputeSettings;
