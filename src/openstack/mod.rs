//! The only module that speaks HTTP to OpenStack services. It knows nothing of
//! `compute/`: the domain decides, this module talks.
//!
//! - [`session`]: Keystone v3 (`[keystone_auth]`): token cache and renewal, catalog,
//!   [`ServiceClient`] for any service, the user's token from an RPC context.
//! - [`cinder`]: volumes and the legacy attach flow (reserve, connection, attach, detach).
//! - [`neutron`]: networks, subnets, ports, security groups.
//! - [`glance`]: images (find, download verified, create/update/upload/delete).
//! - [`placement`]: resource provider, inventories, traits, allocations.
//! - [`error`]: [`OpenStackError`], naming the service, the call and the status.
pub mod cinder;
pub mod error;
pub mod glance;
pub mod neutron;
pub mod placement;
pub mod session;

pub use error::{OpenStackError, Service};
pub use session::{Auth, Catalog, Request, Response, ServiceClient, Session, Token, TokenId, UserToken};
