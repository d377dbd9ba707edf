//! The domain: zun's compute `Manager` as an [`rpc::Endpoint`](crate::rpc::Endpoint).
//!
//! - Casts that zun runs under the `zun-<uuid>` lock go through the per-UUID
//!   [`executor`], in arrival order; the delivery is settled when the operation ends.
//! - Calls that zun runs inline (show, logs, exec, top, stats, ...) run at once and do
//!   not wait behind a long create.
//! - One file per operation family under `ops/`; the container status rules in
//!   `populate`; the Container → Docker mapping in `mapping`.
pub mod claims;
pub mod executor;
pub mod manager;
pub mod ops;
pub mod recovery;

pub use executor::Executor;
pub use manager::{Manager, Services};
