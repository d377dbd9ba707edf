//! Errors a method can end with, and how each becomes oslo's failure payload so that
//! zun-api re-raises the right `zun.common.exception` class (and HTTP code).
use crate::oslo::{ObjectError, RemoteFailure};
use serde_json::{Map, Value};

const ZUN_MODULE: &str = "zun.common.exception";
const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";
const OVO_MODULE: &str = "oslo_versionedobjects.exception";

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RpcError {
    /// A `zun.common.exception` class: the Python side rebuilds it with `message` and
    /// `kwargs` (which carry `code`).
    #[error("{class}: {message}")]
    Zun { class: String, message: String, kwargs: Map<String, Value> },
    /// A Python builtin exception class (`TypeError`, `ValueError`, ...).
    #[error("{class}: {message}")]
    Builtin { class: String, message: String },
    /// oslo's `NoSuchMethod`.
    #[error("Endpoint does not support RPC method {0}")]
    NoSuchMethod(String),
    /// oslo's `UnsupportedVersion`.
    #[error("Endpoint does not support RPC version {version}. Attempted method: {method}")]
    UnsupportedVersion { version: String, method: String },
    /// oslo.versionedobjects deserialization errors.
    #[error("{0}")]
    Object(ObjectError),
    /// The request was never started (the worker is stopping): its delivery goes back
    /// to the queue instead of being answered.
    #[error("not started: the worker is shutting down")]
    Abandoned,
    /// The method panicked (a bug): answered as `ZunException`, and its delivery is
    /// rejected as poison instead of being requeued.
    #[error("Unexpected error: the operation failed inside zun-compute-rs")]
    Panicked,
}

impl RpcError {
    fn zun(class: &str, message: impl Into<String>, code: u16) -> Self {
        let mut kwargs = Map::new();
        kwargs.insert("code".into(), Value::from(code));
        RpcError::Zun { class: class.into(), message: message.into(), kwargs }
    }

    /// `ZunException` (500), the base class; zun wraps unexpected errors in it.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::zun("ZunException", message, 500)
    }
    /// `Invalid` (400).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::zun("Invalid", message, 400)
    }
    /// `NotFound` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::zun("NotFound", message, 404)
    }
    /// `Conflict` (409).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::zun("Conflict", message, 409)
    }
    /// `ContainerNotFound` (404), with the `container` kwarg zun sets.
    pub fn container_not_found(uuid: &str) -> Self {
        let mut e = Self::zun("ContainerNotFound", format!("Container {uuid} could not be found."), 404);
        if let RpcError::Zun { kwargs, .. } = &mut e {
            kwargs.insert("container".into(), Value::String(uuid.into()));
        }
        e
    }
    /// `ResourcesUnavailable` (500 in zun).
    pub fn resources_unavailable(message: impl Into<String>) -> Self {
        Self::zun("ResourcesUnavailable", message, 500)
    }
    /// `OperationNotSupported` (400).
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::zun("OperationNotSupported", message, 400)
    }
    /// `ImageNotFound` (404).
    pub fn image_not_found(message: impl Into<String>) -> Self {
        Self::zun("ImageNotFound", message, 404)
    }
    /// `Base64Exception` (500).
    pub fn base64(message: impl Into<String>) -> Self {
        Self::zun("Base64Exception", message, 500)
    }
    /// A Python builtin exception.
    pub fn builtin(class: &str, message: &str) -> Self {
        RpcError::Builtin { class: class.into(), message: message.into() }
    }
    /// A message we could not decode (answered only when its reply queue was readable).
    pub fn malformed(detail: &str) -> Self {
        Self::builtin("ValueError", &format!("malformed RPC message: {detail}"))
    }

    /// The exception class name as Python sees it.
    pub fn class(&self) -> &str {
        match self {
            RpcError::Zun { class, .. } | RpcError::Builtin { class, .. } => class,
            RpcError::NoSuchMethod(_) => "NoSuchMethod",
            RpcError::Abandoned | RpcError::Panicked => "ZunException",
            RpcError::UnsupportedVersion { .. } => "UnsupportedVersion",
            RpcError::Object(ObjectError::IncompatibleVersion { .. }) => "IncompatibleObjectVersion",
            RpcError::Object(_) => "UnsupportedObjectError",
        }
    }

    /// The failure payload of oslo's reply.
    pub fn to_failure(&self) -> RemoteFailure {
        let (module, message, kwargs) = match self {
            RpcError::Zun { message, kwargs, .. } => (ZUN_MODULE, message.clone(), kwargs.clone()),
            RpcError::Builtin { message, .. } => ("builtins", message.clone(), Map::new()),
            RpcError::NoSuchMethod(_) | RpcError::UnsupportedVersion { .. } => (DISPATCHER_MODULE, self.to_string(), Map::new()),
            RpcError::Object(e) => (OVO_MODULE, e.to_string(), Map::new()),
            RpcError::Abandoned => (ZUN_MODULE, self.to_string(), Map::new()),
            RpcError::Panicked => {
                let mut kwargs = Map::new();
                kwargs.insert("code".into(), Value::from(500));
                (ZUN_MODULE, self.to_string(), kwargs)
            }
        };
        let class = self.class().to_string();
        let qualified = if module == "builtins" { class.clone() } else { format!("{module}.{class}") };
        RemoteFailure {
            tb: vec![
                "Traceback (most recent call last):\n".to_string(),
                "  File \"zun-compute-rs\", in dispatch\n".to_string(),
                format!("{qualified}: {message}\n"),
            ],
            args: vec![Value::String(message.clone())],
            class,
            module: module.to_string(),
            message,
            kwargs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_not_found_matches_zun_shape() {
        let f = RpcError::container_not_found("00000000-0000-0000-0000-00000000dead").to_failure();
        assert_eq!(f.class, "ContainerNotFound");
        assert_eq!(f.module, "zun.common.exception");
        assert_eq!(f.message, "Container 00000000-0000-0000-0000-00000000dead could not be found.");
        assert_eq!(f.args, vec![Value::String(f.message.clone())]);
        assert_eq!(f.kwargs.get("code"), Some(&Value::from(404)));
        assert_eq!(f.kwargs.get("container").and_then(Value::as_str), Some("00000000-0000-0000-0000-00000000dead"));
    }

    #[test]
    fn dispatcher_errors_match_oslo_texts() {
        let f = RpcError::NoSuchMethod("container_teleport".into()).to_failure();
        assert_eq!(f.module, "oslo_messaging.rpc.dispatcher");
        assert_eq!(f.message, "Endpoint does not support RPC method container_teleport");
        let f = RpcError::UnsupportedVersion { version: "2.0".into(), method: "echo_args".into() }.to_failure();
        assert_eq!(f.message, "Endpoint does not support RPC version 2.0. Attempted method: echo_args");
        assert!(f.kwargs.is_empty());
    }
}
