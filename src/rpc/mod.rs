//! RPC dispatch, as oslo.messaging's RPC server does it, without IO.
//!
//! The AMQP layer hands each delivery to [`Dispatcher::accept`] *in arrival order*; it
//! decodes the message, drops duplicates, checks the version, namespace and access
//! policy, deserializes `zun_object` arguments, and submits the request to the
//! [`Endpoint`]. The endpoint's `submit` runs synchronously, so an endpoint that queues
//! work (the compute executor) sees requests in the order they arrived. What comes back
//! tells the AMQP layer how to settle the delivery and whether to reply.
pub mod dedup;
pub mod error;

pub use error::RpcError;

use crate::oslo::{self, RequestContext, RpcMessage};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// What an endpoint's method returns: a result value, or an error for the failure reply.
pub type MethodResult = Result<Value, RpcError>;
/// The running (or queued) method.
pub type MethodFuture = BoxFuture<'static, MethodResult>;

/// A request as an endpoint sees it.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub ctx: RequestContext,
    pub args: Map<String, Value>,
    /// True for calls (a reply is expected).
    pub is_call: bool,
    /// True when the broker says this delivery was delivered before.
    pub redelivered: bool,
}

/// The object the RPC server exposes, like zun's compute `Manager`.
pub trait Endpoint: Send + Sync + 'static {
    /// Starts the method. Returns `None` when the endpoint has no such method.
    /// Must not block: queue or spawn the work and return its future.
    fn submit(&self, req: Request) -> Option<MethodFuture>;
}

/// Where a call's reply goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyTo {
    pub reply_q: String,
    pub msg_id: String,
}

/// How the AMQP layer must treat one delivery.
pub enum Disposition {
    /// Undecodable: reject it without requeue (dead-letter), and reply with the
    /// failure when the caller could be identified.
    Reject { error: oslo::CodecError, reply_to: Option<ReplyTo>, failure: Option<oslo::RemoteFailure> },
    /// A `_unique_id` seen before: acknowledge and drop, no reply (as oslo does).
    Duplicate { unique_id: String },
    /// Run it: await `future`, reply when `reply_to` is set, then acknowledge.
    Run(Running),
}

pub struct Running {
    pub method: String,
    pub request_id: Option<String>,
    pub reply_to: Option<ReplyTo>,
    /// Send `ending: false` replies at this period while the method runs (call monitor).
    pub heartbeat: Option<Duration>,
    pub unique_id: Option<String>,
    pub future: MethodFuture,
}

/// The decoded properties of a delivery that matter to decoding.
pub use oslo::BodyMeta;

/// Decodes, filters and routes requests to one endpoint.
pub struct Dispatcher {
    endpoint: Arc<dyn Endpoint>,
    seen: dedup::UniqueIds,
    /// The version the endpoint implements (zun's Manager: no target, so 1.0).
    implemented_version: &'static str,
}

impl Dispatcher {
    pub fn new(endpoint: Arc<dyn Endpoint>) -> Self {
        Dispatcher { endpoint, seen: dedup::UniqueIds::new(4096), implemented_version: "1.0" }
    }

    /// Forgets a `_unique_id`, so the redelivery of a request that was handed back
    /// to the broker is processed.
    pub fn forget(&self, unique_id: &str) {
        self.seen.forget(unique_id);
    }

    /// Handles one delivery. Call in arrival order.
    pub fn accept(&self, meta: &BodyMeta, body: &[u8], redelivered: bool) -> Disposition {
        let map = match oslo::decode_body(meta, body) {
            Ok(m) => m,
            Err(error) => {
                let reply_to = sniff_reply_to(body);
                let failure = reply_to.as_ref().map(|_| RpcError::malformed(&error.to_string()).to_failure());
                return Disposition::Reject { error, reply_to, failure };
            }
        };
        let msg = match RpcMessage::from_map(map) {
            Ok(m) => m,
            Err(error) => {
                let reply_to = sniff_reply_to(body);
                let failure = reply_to.as_ref().map(|_| RpcError::malformed(&error.to_string()).to_failure());
                return Disposition::Reject { error, reply_to, failure };
            }
        };
        let reply_to = match (&msg.reply_q, &msg.msg_id) {
            (Some(q), Some(id)) => Some(ReplyTo { reply_q: q.clone(), msg_id: id.clone() }),
            _ => None,
        };
        if let Some(uid) = &msg.unique_id {
            if !self.seen.insert(uid) {
                return Disposition::Duplicate { unique_id: uid.clone() };
            }
        }
        let heartbeat = reply_to.as_ref().and_then(|_| call_monitor_period(msg.timeout.as_ref()));
        let request_id = msg.context.request_id().map(str::to_string);
        let method_label = msg.method.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
        let unique_id = msg.unique_id.clone();
        let future = match self.route(msg, reply_to.is_some(), redelivered) {
            Ok(f) => f,
            Err(e) => Box::pin(async move { Err(e) }) as MethodFuture,
        };
        Disposition::Run(Running { method: method_label, request_id, reply_to, heartbeat, unique_id, future })
    }

    /// oslo's `RPCDispatcher.dispatch` checks, then the endpoint.
    fn route(&self, msg: RpcMessage, is_call: bool, redelivered: bool) -> Result<MethodFuture, RpcError> {
        let method = match &msg.method {
            Some(Value::String(s)) => s.clone(),
            // oslo does getattr(endpoint, None): TypeError
            None | Some(Value::Null) => {
                return Err(RpcError::builtin("TypeError", "attribute name must be string, not 'NoneType'"))
            }
            Some(other) => {
                return Err(RpcError::builtin(
                    "TypeError",
                    &format!("attribute name must be string, not '{}'", py_type_name(other)),
                ))
            }
        };
        let version = match &msg.version {
            None | Some(Value::Null) => "1.0".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(RpcError::builtin(
                    "AttributeError",
                    &format!("'{}' object has no attribute 'split'", py_type_name(other)),
                ))
            }
        };
        // zun's endpoint has no namespace: any namespace is a mismatch, reported as a version error.
        let namespace_ok = matches!(&msg.namespace, None | Some(Value::Null));
        if !namespace_ok || !oslo::version::version_str_is_compatible(self.implemented_version, &version) {
            return Err(RpcError::UnsupportedVersion { version, method });
        }
        // DefaultRPCAccessPolicy: private names are not exposed.
        if method.starts_with('_') {
            return Err(RpcError::NoSuchMethod(method));
        }
        let args = match msg.args {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(RpcError::builtin(
                    "AttributeError",
                    &format!("'{}' object has no attribute 'items'", py_type_name(&other)),
                ))
            }
        };
        check_objects(&Value::Object(args.clone()))?;
        let req = Request { method: method.clone(), ctx: msg.context, args, is_call, redelivered };
        self.endpoint.submit(req).ok_or(RpcError::NoSuchMethod(method))
    }
}

/// The serializer's walk over arguments: every `zun_object` must be of a known name,
/// namespace and compatible version, or the call fails before reaching the method.
fn check_objects(v: &Value) -> Result<(), RpcError> {
    match v {
        Value::Object(m) if m.contains_key(oslo::object::KEY_NAME) => {
            let p = oslo::ObjectPrimitive::from_value(v).map_err(RpcError::Object)?;
            oslo::check_object_version(&p).map_err(RpcError::Object)?;
            for nested in p.data.values() {
                check_objects(nested)?;
            }
            Ok(())
        }
        Value::Object(m) => m.values().try_for_each(check_objects),
        Value::Array(a) => a.iter().try_for_each(check_objects),
        _ => Ok(()),
    }
}

/// oslo sends call-monitor heartbeats when `int(_timeout) / 2 >= 1`, every `_timeout / 2` s.
pub fn call_monitor_period(timeout: Option<&Value>) -> Option<Duration> {
    let t = timeout?.as_f64()?;
    if !t.is_finite() || t <= 0.0 {
        return None;
    }
    if (t.trunc() as i64) / 2 >= 1 {
        // A `_timeout` beyond what a Duration holds means no heartbeat worth sending.
        Duration::try_from_secs_f64(t / 2.0).ok()
    } else {
        None
    }
}

/// Best effort: find `_msg_id` and `_reply_q` in a body we could not decode, so the
/// caller gets a failure instead of a timeout.
pub fn sniff_reply_to(body: &[u8]) -> Option<ReplyTo> {
    let outer: Value = serde_json::from_slice(body).ok()?;
    let inner = match outer.get("oslo.message").and_then(Value::as_str) {
        Some(s) => serde_json::from_str::<Value>(s).ok()?,
        None => outer,
    };
    let q = inner.get("_reply_q")?.as_str()?;
    let id = inner.get("_msg_id")?.as_str()?;
    Some(ReplyTo { reply_q: q.to_string(), msg_id: id.to_string() })
}

/// Python's name for a JSON value's type, for faithful error texts.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_monitor_rule() {
        assert_eq!(call_monitor_period(None), None);
        assert_eq!(call_monitor_period(Some(&Value::Null)), None);
        assert_eq!(call_monitor_period(Some(&json!(1))), None);
        assert_eq!(call_monitor_period(Some(&json!(3))), Some(Duration::from_secs_f64(1.5)));
        assert_eq!(call_monitor_period(Some(&json!(2))), Some(Duration::from_secs(1)));
        assert_eq!(call_monitor_period(Some(&json!(1e300))), None);
    }

    #[test]
    fn sniffs_reply_target() {
        let inner = json!({"_msg_id": "m", "_reply_q": "reply_x"}).to_string();
        let body = json!({"oslo.version": "9.9", "oslo.message": inner}).to_string();
        assert_eq!(sniff_reply_to(body.as_bytes()), Some(ReplyTo { reply_q: "reply_x".into(), msg_id: "m".into() }));
        assert_eq!(sniff_reply_to(b"garbage"), None);
    }
}
