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

    /// The metrics label for `method`: its name when the endpoint has it, else
    /// `"unknown"`. Labels come from this closed set, never from the wire.
    fn method_label(&self, _method: &str) -> &'static str {
        "unknown"
    }
}

/// The label of a method the endpoint does not have.
pub const UNKNOWN_METHOD: &str = "unknown";

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
    /// A `_unique_id` seen before and settled: acknowledge and drop, no reply (as oslo does).
    Duplicate { unique_id: String },
    /// A copy of a message that still runs (the broker redelivered it, or a peer reused
    /// its `_unique_id`): hold it unsettled and settle it like the first copy, so it is
    /// neither run twice nor lost if the process dies before the first copy settles.
    Held { unique_id: String, held: dedup::Held },
    /// Run it: await `future`, reply when `reply_to` is set, then acknowledge.
    Run(Running),
}

pub struct Running {
    /// The method name from the wire (for logs: untrusted).
    pub method: String,
    /// The method's metrics label, from the endpoint's closed set.
    pub label: &'static str,
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
    limits: oslo::Limits,
}

/// AMQP's short-string limit: a `_reply_q` longer than this cannot be a routing key.
pub const MAX_REPLY_QUEUE_BYTES: usize = 255;

impl Dispatcher {
    pub fn new(endpoint: Arc<dyn Endpoint>) -> Self {
        Dispatcher { endpoint, seen: dedup::UniqueIds::new(4096), implemented_version: "1.0", limits: oslo::Limits::default() }
    }

    /// What one message may cost (size, JSON values); see [`oslo::Limits`].
    pub fn with_limits(mut self, limits: oslo::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Forgets a `_unique_id`, so the redelivery of a request that was handed back
    /// to the broker is processed (and copies held meanwhile go back too).
    pub fn forget(&self, unique_id: &str) {
        self.seen.settle(unique_id, dedup::Settlement::Requeued);
    }

    /// The first copy of `unique_id` was settled `how`; held copies follow it.
    pub fn settled(&self, unique_id: &str, how: dedup::Settlement) {
        self.seen.settle(unique_id, how);
    }

    /// The metrics label for a method name from the wire.
    pub fn method_label(&self, method: &str) -> &'static str {
        self.endpoint.method_label(method)
    }

    /// Handles one delivery. Call in arrival order.
    pub fn accept(&self, meta: &BodyMeta, body: &[u8], redelivered: bool) -> Disposition {
        let map = match oslo::decode_body_limited(meta, body, &self.limits) {
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
        // A reply that can never be published: poison, rejected without an answer.
        if let Some(to) = &reply_to {
            if to.reply_q.is_empty() || to.reply_q.len() > MAX_REPLY_QUEUE_BYTES {
                let error = oslo::CodecError::BadKey {
                    key: "_reply_q".into(),
                    detail: format!("{} bytes; a queue name has 1 to {MAX_REPLY_QUEUE_BYTES}", to.reply_q.len()),
                };
                return Disposition::Reject { error, reply_to: None, failure: None };
            }
        }
        if let Some(uid) = &msg.unique_id {
            match self.seen.insert(uid) {
                dedup::Seen::New => {}
                dedup::Seen::Settled => return Disposition::Duplicate { unique_id: uid.clone() },
                dedup::Seen::Running(held) => return Disposition::Held { unique_id: uid.clone(), held },
            }
        }
        let heartbeat = reply_to.as_ref().and_then(|_| call_monitor_period(msg.timeout.as_ref()));
        let request_id = msg.context.request_id().map(str::to_string);
        let method_name = msg.method.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
        let label = self.endpoint.method_label(&method_name);
        let unique_id = msg.unique_id.clone();
        let future = match self.route(msg, reply_to.is_some(), redelivered) {
            Ok(f) => f,
            Err(e) => Box::pin(async move { Err(e) }) as MethodFuture,
        };
        Disposition::Run(Running { method: method_name, label, request_id, reply_to, heartbeat, unique_id, future })
    }

    /// oslo's `RPCDispatcher.dispatch` checks, then the endpoint.
    fn route(&self, msg: RpcMessage, is_call: bool, redelivered: bool) -> Result<MethodFuture, RpcError> {
        let method = match &msg.method {
            Some(Value::String(s)) => s.clone(),
            // oslo does getattr(endpoint, None): TypeError
            None | Some(Value::Null) => return Err(RpcError::builtin("TypeError", "attribute name must be string, not 'NoneType'")),
            Some(other) => {
                return Err(RpcError::builtin("TypeError", &format!("attribute name must be string, not '{}'", py_type_name(other))))
            }
        };
        let version = match &msg.version {
            None | Some(Value::Null) => "1.0".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(RpcError::builtin("AttributeError", &format!("'{}' object has no attribute 'split'", py_type_name(other))))
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
                return Err(RpcError::builtin("AttributeError", &format!("'{}' object has no attribute 'items'", py_type_name(&other))))
            }
        };
        check_args(&args)?;
        let req = Request { method: method.clone(), ctx: msg.context, args, is_call, redelivered };
        self.endpoint.submit(req).ok_or(RpcError::NoSuchMethod(method))
    }
}

/// [`check_objects`] of the `args` dict, walked in place.
fn check_args(args: &Map<String, Value>) -> Result<(), RpcError> {
    if args.contains_key(oslo::object::KEY_NAME) {
        // The dict itself looks like a primitive: checked as one (a copy, for the odd sender).
        return check_objects(&Value::Object(args.clone()));
    }
    args.values().try_for_each(check_objects)
}

/// The serializer's walk over arguments: every `zun_object` must be of a known name,
/// namespace and compatible version, or the call fails before reaching the method.
/// Nothing is copied: the primitives are read where they are.
fn check_objects(v: &Value) -> Result<(), RpcError> {
    match v {
        Value::Object(m) if m.contains_key(oslo::object::KEY_NAME) => {
            let p = oslo::ObjectPrimitive::parse(v).map_err(RpcError::Object)?;
            p.check_version().map_err(RpcError::Object)?;
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
    // A huge body was refused for its size: it is scanned, never parsed.
    if body.len() > SNIFF_MAX_BYTES {
        return scan_reply_to(body);
    }
    let outer: Value = serde_json::from_slice(body).ok()?;
    let inner = match outer.get("oslo.message").and_then(Value::as_str) {
        // A whole envelope whose message cannot be parsed (nested too deep, say).
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(_) => return scan_reply_to(s.as_bytes()),
        },
        None => outer,
    };
    let q = inner.get("_reply_q")?.as_str().filter(|q| !q.is_empty() && q.len() <= MAX_REPLY_QUEUE_BYTES)?;
    let id = inner.get("_msg_id")?.as_str()?;
    Some(ReplyTo { reply_q: q.to_string(), msg_id: id.to_string() })
}

fn scan_reply_to(body: &[u8]) -> Option<ReplyTo> {
    let q = scan_string_value(body, b"_reply_q")?;
    let id = scan_string_value(body, b"_msg_id")?;
    Some(ReplyTo { reply_q: q, msg_id: id })
}

const SNIFF_MAX_BYTES: usize = 1 << 20;

/// Finds `"key": "value"` in raw JSON, also inside the envelope's escaped string
/// (`\"key\": \"value\"`), without parsing. Only plain values (no escapes, at most
/// 255 bytes) are taken.
fn scan_string_value(body: &[u8], key: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = body[from..].windows(key.len()).position(|w| w == key) {
        let mut i = from + pos + key.len();
        from = i;
        let quote = |i: usize| -> Option<usize> {
            match body.get(i..)? {
                [b'\\', b'"', ..] => Some(i + 2),
                [b'"', ..] => Some(i + 1),
                _ => None,
            }
        };
        let Some(j) = quote(i) else { continue };
        i = j;
        while body.get(i) == Some(&b' ') {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while body.get(i) == Some(&b' ') {
            i += 1;
        }
        let Some(start) = quote(i) else { continue };
        let len = body[start..].iter().take(MAX_REPLY_QUEUE_BYTES + 1).position(|b| *b == b'"' || *b == b'\\')?;
        if body.get(start + len) == Some(&b'\\') && body.get(start + len + 1) != Some(&b'"') {
            return None;
        }
        return std::str::from_utf8(&body[start..start + len]).ok().filter(|s| !s.is_empty()).map(str::to_string);
    }
    None
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
        let big = json!({"method": "m", "args": {"blob": "x".repeat(2 << 20)}, "_msg_id": "m1", "_reply_q": "reply_y"}).to_string();
        let env = json!({"oslo.version": "2.0", "oslo.message": big}).to_string();
        assert_eq!(sniff_reply_to(env.as_bytes()), Some(ReplyTo { reply_q: "reply_y".into(), msg_id: "m1".into() }));
        assert_eq!(sniff_reply_to(big.as_bytes()), Some(ReplyTo { reply_q: "reply_y".into(), msg_id: "m1".into() }));
    }
}
