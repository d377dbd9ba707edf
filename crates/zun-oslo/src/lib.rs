//! The oslo.messaging wire codec, pure: no IO anywhere in this module.
//!
//! - [`pyjson`]: JSON exactly as Python's `json.loads` / `json.dumps` read and write it.
//! - [`envelope`]: AMQP body -> message map ([`decode_body`], with the real server's
//!   reject rules) and message map -> 2.0 envelope ([`encode_envelope`]).
//! - [`message`]: RPC requests ([`RpcMessage`]) and replies ([`Reply`]).
//! - [`context`]: the `_context_*` request context ([`RequestContext`]), secrets redacted
//!   in `Debug`/`Display`.
//! - [`object`]: `zun_object.*` versioned-object primitives and the typed [`Container`];
//!   [`container_fields`] (field table 1.0..1.44), [`container_types`] (enums and value
//!   types), [`container_access`] (typed accessors).
//! - [`failure`]: failure payloads ([`RemoteFailure`]).
//! - [`topology`]: exchange/queue/binding declarations oslo makes.
//! - [`version`]: oslo's version compatibility rules.
//! - [`error`]: the [`CodecError`] type.
pub mod container_access;
pub mod container_fields;
pub mod container_types;
pub mod context;
pub mod envelope;
pub mod error;
pub mod failure;
pub mod message;
pub mod object;
pub mod pyjson;
pub mod topology;
pub mod version;

pub use container_types::{ContainerStatus, Cpuset, Healthcheck, RestartPolicy, Status, TaskState};
pub use context::RequestContext;
pub use envelope::{decode_body, decode_body_limited, encode_envelope, BodyMeta, Limits};
pub use error::{CodecError, Layer};
pub use failure::RemoteFailure;
pub use message::{Reply, RpcMessage};
pub use object::{check_object_version, Container, ObjectError, ObjectPrimitive, PrimitiveRef};
pub use pyjson::to_python_json;
pub use topology::{server_topology, ArgValue, Binding, ExchangeKind, ExchangeSpec, QueueSpec, RabbitOptions, ServerTopology};
pub use version::version_is_compatible;
