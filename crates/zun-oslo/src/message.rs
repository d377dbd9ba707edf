//! RPC requests and replies: the dict inside the envelope.
//!
//! A request is `{method, args, [namespace], [version], [_msg_id, _reply_q, _timeout],
//! [_unique_id], _context_*...}` (oslo-wire §3.1). [`RpcMessage::from_map`] takes it
//! apart the way oslo's listener does (`_context_` keys into the context, the four
//! underscore keys popped, everything else kept) and [`RpcMessage::to_map`] puts it
//! back in oslo's emission order.
//!
//! A reply is `{result, failure, ending, _msg_id, _unique_id}` (§3.2); `failure` is a
//! JSON *string* (see [`crate::failure`]).
use crate::context::{RequestContext, CONTEXT_PREFIX};
use crate::error::CodecError;
use crate::failure::RemoteFailure;
use crate::pyjson::{py_repr, py_type_name};
use serde_json::{Map, Value};

pub const KEY_METHOD: &str = "method";
pub const KEY_ARGS: &str = "args";
pub const KEY_NAMESPACE: &str = "namespace";
pub const KEY_VERSION: &str = "version";
pub const KEY_MSG_ID: &str = "_msg_id";
pub const KEY_REPLY_Q: &str = "_reply_q";
pub const KEY_TIMEOUT: &str = "_timeout";
pub const KEY_UNIQUE_ID: &str = "_unique_id";

/// A fresh uuid4 in hex, as oslo makes `_msg_id` and `_unique_id`.
pub fn new_uuid_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Why a request's `method` cannot name an endpoint method. The text is the Python
/// `TypeError` the real dispatcher raises (`hasattr(endpoint, method)`), for a
/// `builtins.TypeError` failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute name must be string, not '{0}'")]
pub struct MethodNameError(pub &'static str);

/// An RPC request (cast or call).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcMessage {
    /// Raw `method`: may be missing or not a string (see [`RpcMessage::method_name`]).
    pub method: Option<Value>,
    /// Keyword arguments. A request without `args` gets `{}`, as oslo's dispatcher does.
    pub args: Value,
    /// `namespace`, when the sender's target had one (zun: never).
    pub namespace: Option<Value>,
    /// `version`, raw; absent means `"1.0"`.
    pub version: Option<Value>,
    /// `_msg_id`: set (non-empty) for a call. `null` reads as absent.
    pub msg_id: Option<String>,
    /// `_reply_q`: the caller's reply queue.
    pub reply_q: Option<String>,
    /// `_timeout`: `None` = key absent, `Some(Null)` = present but null (no call monitor).
    pub timeout: Option<Value>,
    /// `_unique_id`, for duplicate detection.
    pub unique_id: Option<String>,
    /// The `_context_*` keys, prefix stripped, in order.
    pub context: RequestContext,
    /// Any other top-level key, kept untouched and in order.
    pub extra: Map<String, Value>,
}

fn opt_string(m: &mut Map<String, Value>, key: &str) -> Result<Option<String>, CodecError> {
    match m.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(CodecError::BadKey {
            key: key.into(),
            detail: format!("expected a string, got {} {}", py_type_name(&other), py_repr(&other)),
        }),
    }
}

impl RpcMessage {
    /// A cast (no reply expected) with a fresh `_unique_id`.
    pub fn cast(method: &str, args: Map<String, Value>, context: RequestContext) -> Self {
        RpcMessage {
            method: Some(Value::String(method.into())),
            args: Value::Object(args),
            namespace: None,
            version: None,
            msg_id: None,
            reply_q: None,
            timeout: None,
            unique_id: Some(new_uuid_hex()),
            context,
            extra: Map::new(),
        }
    }

    /// A call: fresh `_msg_id` and `_unique_id`, `_timeout` null (no call monitor).
    pub fn call(method: &str, args: Map<String, Value>, context: RequestContext, reply_q: &str) -> Self {
        RpcMessage {
            msg_id: Some(new_uuid_hex()),
            reply_q: Some(reply_q.into()),
            timeout: Some(Value::Null),
            ..Self::cast(method, args, context)
        }
    }

    /// Takes a decoded message apart like oslo's listener. Fails only when `_msg_id`,
    /// `_reply_q` or `_unique_id` is neither a string nor null (Python would carry on
    /// with the odd value and fail later when replying).
    pub fn from_map(mut m: Map<String, Value>) -> Result<RpcMessage, CodecError> {
        let mut ctx = Map::new();
        let mut rest = Map::new();
        let msg_id = opt_string(&mut m, KEY_MSG_ID)?;
        let reply_q = opt_string(&mut m, KEY_REPLY_Q)?;
        let unique_id = opt_string(&mut m, KEY_UNIQUE_ID)?;
        let timeout = m.shift_remove(KEY_TIMEOUT);
        let method = m.shift_remove(KEY_METHOD);
        let args = m.shift_remove(KEY_ARGS).unwrap_or_else(|| Value::Object(Map::new()));
        let namespace = m.shift_remove(KEY_NAMESPACE);
        let version = m.shift_remove(KEY_VERSION);
        for (mut k, v) in m {
            if k.starts_with(CONTEXT_PREFIX) {
                // The key's own buffer, without its prefix: no new allocation per key.
                k.drain(..CONTEXT_PREFIX.len());
                ctx.insert(k, v);
            } else {
                rest.insert(k, v);
            }
        }
        Ok(RpcMessage {
            method,
            args,
            namespace,
            version,
            msg_id,
            reply_q,
            timeout,
            unique_id,
            context: RequestContext::new(ctx),
            extra: rest,
        })
    }

    /// oslo's emission order: method, args, namespace?, version?, other keys,
    /// `_msg_id`/`_reply_q` (calls), `_timeout` (when set), `_unique_id`, `_context_*`.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(method) = &self.method {
            m.insert(KEY_METHOD.into(), method.clone());
        }
        m.insert(KEY_ARGS.into(), self.args.clone());
        if let Some(ns) = &self.namespace {
            m.insert(KEY_NAMESPACE.into(), ns.clone());
        }
        if let Some(v) = &self.version {
            m.insert(KEY_VERSION.into(), v.clone());
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        if let Some(id) = &self.msg_id {
            m.insert(KEY_MSG_ID.into(), Value::String(id.clone()));
            m.insert(KEY_REPLY_Q.into(), self.reply_q.clone().map_or(Value::Null, Value::String));
        }
        if let Some(t) = &self.timeout {
            m.insert(KEY_TIMEOUT.into(), t.clone());
        }
        if let Some(u) = &self.unique_id {
            m.insert(KEY_UNIQUE_ID.into(), Value::String(u.clone()));
        }
        m.extend(self.context.to_flat());
        m
    }

    /// A call expects a reply: `_msg_id` is set and non-empty (oslo tests truthiness).
    pub fn is_call(&self) -> bool {
        self.msg_id.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The method name, or the `TypeError` oslo's dispatcher raises for a missing or
    /// non-string `method`.
    pub fn method_name(&self) -> Result<&str, MethodNameError> {
        match &self.method {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(MethodNameError(py_type_name(other))),
            None => Err(MethodNameError("NoneType")),
        }
    }

    /// Keyword argument `name` (`None` when absent or when `args` is not a dict).
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.as_object().and_then(|a| a.get(name))
    }

    /// The call-monitor timeout in whole seconds (`int(_timeout)`), when set.
    pub fn call_monitor_timeout(&self) -> Option<i64> {
        match &self.timeout {
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64)),
            _ => None,
        }
    }

    /// Seconds between call-monitor heartbeats: `_timeout / 2` when that is at least 1
    /// (oslo sends none otherwise).
    pub fn heartbeat_interval_secs(&self) -> Option<f64> {
        let t = self.call_monitor_timeout()?;
        if t / 2 >= 1 {
            let exact = match &self.timeout {
                Some(Value::Number(n)) => n.as_f64().unwrap_or(t as f64),
                _ => t as f64,
            };
            Some(exact / 2.0)
        } else {
            None
        }
    }
}

pub const KEY_RESULT: &str = "result";
pub const KEY_FAILURE: &str = "failure";
pub const KEY_ENDING: &str = "ending";

/// An RPC reply (final or call-monitor heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub result: Value,
    /// The serialized failure (a JSON string, see [`RemoteFailure::to_json_string`]).
    pub failure: Option<String>,
    /// `false` only for call-monitor heartbeats.
    pub ending: bool,
    pub msg_id: String,
    pub unique_id: String,
}

impl Reply {
    pub fn success(msg_id: &str, result: Value) -> Self {
        Reply { result, failure: None, ending: true, msg_id: msg_id.into(), unique_id: new_uuid_hex() }
    }

    pub fn failure(msg_id: &str, failure: &RemoteFailure) -> Self {
        Reply {
            result: Value::Null,
            failure: Some(failure.to_json_string()),
            ending: true,
            msg_id: msg_id.into(),
            unique_id: new_uuid_hex(),
        }
    }

    /// The call-monitor keep-alive: `{result: null, failure: null, ending: false}`.
    pub fn heartbeat(msg_id: &str) -> Self {
        Reply { result: Value::Null, failure: None, ending: false, msg_id: msg_id.into(), unique_id: new_uuid_hex() }
    }

    /// The parsed failure, when there is one.
    pub fn remote_failure(&self) -> Option<Result<RemoteFailure, CodecError>> {
        self.failure.as_deref().map(RemoteFailure::from_json_str)
    }

    /// The reply as its 2.0 envelope, byte for byte `encode_envelope(&self.to_map())`,
    /// written straight from the fields in one pass (the result is neither copied into a
    /// map nor serialized twice).
    pub fn encode(&self) -> Vec<u8> {
        use crate::pyjson::{write_str_quoted as key, write_value_quoted};
        let mut out = String::with_capacity(512);
        out.push_str(crate::envelope::ENVELOPE_OPEN);
        out.push('{');
        key(&mut out, KEY_RESULT);
        out.push_str(": ");
        write_value_quoted(&mut out, &self.result);
        out.push_str(", ");
        key(&mut out, KEY_FAILURE);
        out.push_str(": ");
        match &self.failure {
            Some(f) => key(&mut out, f),
            None => out.push_str("null"),
        }
        out.push_str(", ");
        key(&mut out, KEY_ENDING);
        out.push_str(if self.ending { ": true, " } else { ": false, " });
        key(&mut out, KEY_MSG_ID);
        out.push_str(": ");
        key(&mut out, &self.msg_id);
        out.push_str(", ");
        key(&mut out, KEY_UNIQUE_ID);
        out.push_str(": ");
        key(&mut out, &self.unique_id);
        out.push('}');
        out.push_str(crate::envelope::ENVELOPE_CLOSE);
        out.into_bytes()
    }

    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(KEY_RESULT.into(), self.result.clone());
        m.insert(KEY_FAILURE.into(), self.failure.clone().map_or(Value::Null, Value::String));
        m.insert(KEY_ENDING.into(), Value::Bool(self.ending));
        m.insert(KEY_MSG_ID.into(), Value::String(self.msg_id.clone()));
        m.insert(KEY_UNIQUE_ID.into(), Value::String(self.unique_id.clone()));
        m
    }

    /// Reads a reply. `failure` must be null or a string, `ending` a bool (absent means
    /// true, as oslo's waiter treats old replies), `_msg_id` a string.
    pub fn from_map(m: &Map<String, Value>) -> Result<Reply, CodecError> {
        let bad = |key: &str, want: &str, v: &Value| CodecError::BadKey {
            key: key.into(),
            detail: format!("expected {want}, got {}", py_type_name(v)),
        };
        let failure = match m.get(KEY_FAILURE) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(KEY_FAILURE, "a JSON string", v)),
        };
        let ending = match m.get(KEY_ENDING) {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(bad(KEY_ENDING, "a bool", v)),
        };
        let msg_id = match m.get(KEY_MSG_ID) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(bad(KEY_MSG_ID, "a string", v)),
            None => return Err(CodecError::BadKey { key: KEY_MSG_ID.into(), detail: "missing".into() }),
        };
        let unique_id = match m.get(KEY_UNIQUE_ID) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(v) => return Err(bad(KEY_UNIQUE_ID, "a string", v)),
        };
        Ok(Reply { result: m.get(KEY_RESULT).cloned().unwrap_or(Value::Null), failure, ending, msg_id, unique_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_round_trip_and_order() {
        let m = json!({"method": "m", "args": {"x": 1}, "_msg_id": "a", "_reply_q": "reply_b", "_timeout": null,
            "_unique_id": "u", "_context_user": "u1", "odd": 1, "_context_roles": []});
        let msg = RpcMessage::from_map(m.as_object().unwrap().clone()).unwrap();
        assert!(msg.is_call());
        assert_eq!(msg.method_name(), Ok("m"));
        assert_eq!(msg.context.get("user"), Some(&json!("u1")));
        assert_eq!(msg.extra.get("odd"), Some(&json!(1)));
        let keys: Vec<_> = msg.to_map().keys().cloned().collect();
        assert_eq!(keys, ["method", "args", "odd", "_msg_id", "_reply_q", "_timeout", "_unique_id", "_context_user", "_context_roles"]);
    }

    #[test]
    fn method_errors_are_python_type_errors() {
        let msg = RpcMessage::from_map(Map::new()).unwrap();
        assert_eq!(msg.method_name().unwrap_err().to_string(), "attribute name must be string, not 'NoneType'");
        assert!(!msg.is_call());
        assert_eq!(msg.args, json!({}));
        let msg = RpcMessage::from_map(json!({"method": 5}).as_object().unwrap().clone()).unwrap();
        assert_eq!(msg.method_name().unwrap_err().0, "int");
    }

    #[test]
    fn heartbeat_interval() {
        let mut msg = RpcMessage::from_map(Map::new()).unwrap();
        msg.timeout = Some(json!(2));
        assert_eq!(msg.heartbeat_interval_secs(), Some(1.0));
        msg.timeout = Some(json!(1));
        assert_eq!(msg.heartbeat_interval_secs(), None);
        msg.timeout = Some(Value::Null);
        assert_eq!(msg.heartbeat_interval_secs(), None);
    }

    #[test]
    fn replies() {
        let r = Reply::heartbeat("abc");
        assert!(!r.ending);
        assert_eq!(r.unique_id.len(), 32);
        let back = Reply::from_map(&r.to_map()).unwrap();
        assert_eq!(r.encode(), crate::encode_envelope(&r.to_map()));
        assert_eq!(back, r);
    }

    #[test]
    fn reply_encode_is_the_envelope_of_its_map() {
        let result = json!({"a": [1, 2.5, -0.0, 1e16, null, true], "s": "q\"\\\n\u{1}é🚀", "n": {"x": {}}, "e": []});
        let failure = crate::failure::RemoteFailure::value_error("bad \"thing\" é".to_string());
        for r in [
            Reply::success("m1", result.clone()),
            Reply::success("m2", Value::Null),
            Reply::success("m3", json!("just a string")),
            Reply::failure("m4", &failure),
            Reply::heartbeat("m5"),
        ] {
            let two_pass = crate::envelope::wrap_envelope(&crate::pyjson::map_to_python_json(&r.to_map()));
            assert_eq!(r.encode(), two_pass, "{r:?}");
            assert_eq!(r.encode(), crate::encode_envelope(&r.to_map()), "{r:?}");
        }
    }
}
