//! The request context that travels flattened in every RPC request (`_context_<key>`).
//!
//! [`RequestContext`] keeps every key it received, in order and untouched, so it can be
//! put back on the wire exactly ([`RequestContext::to_flat`]) whatever the oslo.context
//! version of the sender. Typed accessors read the keys zun-compute needs.
//!
//! Secrets: `auth_token`, `password` and `auth_token_info` travel in clear in every
//! message. `Debug` and `Display` never print them (they show `***`), so a context can
//! be logged safely.
use chrono::NaiveDateTime;
use serde_json::{Map, Value};
use std::fmt;

/// Prefix of the flattened context keys in a request.
pub const CONTEXT_PREFIX: &str = "_context_";
/// Keys whose values must never reach a log.
pub const SECRET_KEYS: [&str; 3] = ["auth_token", "password", "auth_token_info"];
/// zun's context `timestamp` format (`%Y-%m-%dT%H:%M:%S.%f`, no timezone).
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

#[derive(Clone, Default, PartialEq)]
pub struct RequestContext {
    /// Every context key (prefix stripped) in wire order.
    pub values: Map<String, Value>,
}

impl RequestContext {
    pub fn new(values: Map<String, Value>) -> Self {
        RequestContext { values }
    }

    /// The raw value of a key, `None` when absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Sets a key (appended at the end when new).
    pub fn set(&mut self, key: &str, value: Value) {
        self.values.insert(key.to_string(), value);
    }

    fn str_of(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(Value::as_str)
    }

    fn bool_of(&self, key: &str) -> bool {
        match self.values.get(key) {
            Some(Value::Bool(b)) => *b,
            // Python truthiness for the odd sender.
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
            _ => false,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        self.str_of("request_id")
    }

    pub fn global_request_id(&self) -> Option<&str> {
        self.str_of("global_request_id")
    }

    /// `user_id`, falling back to oslo.context's `user`.
    pub fn user_id(&self) -> Option<&str> {
        self.str_of("user_id").or_else(|| self.str_of("user"))
    }

    /// `project_id`, falling back to oslo.context's `project`.
    pub fn project_id(&self) -> Option<&str> {
        self.str_of("project_id").or_else(|| self.str_of("project"))
    }

    pub fn user_name(&self) -> Option<&str> {
        self.str_of("user_name")
    }

    pub fn project_name(&self) -> Option<&str> {
        self.str_of("project_name")
    }

    /// The role names (empty when absent or not a list).
    pub fn roles(&self) -> Vec<&str> {
        match self.values.get("roles") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.bool_of("is_admin")
    }

    pub fn all_projects(&self) -> bool {
        self.bool_of("all_projects")
    }

    pub fn read_only(&self) -> bool {
        self.bool_of("read_only")
    }

    /// The keystone token, for user-scoped calls to other services. Never log it.
    pub fn auth_token(&self) -> Option<&str> {
        self.str_of("auth_token")
    }

    /// `timestamp` parsed (`2024-05-17T09:30:12.345678`); `None` if absent or malformed.
    pub fn timestamp(&self) -> Option<NaiveDateTime> {
        let s = self.str_of("timestamp")?;
        NaiveDateTime::parse_from_str(s, TIMESTAMP_FORMAT).or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")).ok()
    }

    /// The context flattened back into message keys (`_context_<key>`), wire order.
    pub fn to_flat(&self) -> Map<String, Value> {
        self.values.iter().map(|(k, v)| (format!("{CONTEXT_PREFIX}{k}"), v.clone())).collect()
    }

    /// A copy safe to log or to echo anywhere: secrets replaced by `"***"`.
    pub fn redacted(&self) -> Map<String, Value> {
        self.values
            .iter()
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) && !v.is_null() { Value::String("***".into()) } else { v.clone() };
                (k.clone(), v)
            })
            .collect()
    }
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestContext").field("values", &Value::Object(self.redacted())).finish()
    }
}

impl fmt::Display for RequestContext {
    /// A short log form: `request_id user project`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} user={} project={}",
            self.request_id().unwrap_or("-"),
            self.user_id().unwrap_or("-"),
            self.project_id().unwrap_or("-")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> RequestContext {
        let v = json!({"user": "u1", "project": "p1", "auth_token": "SECRET-TOKEN", "password": "hunter2",
            "auth_token_info": {"token": {"x": "SECRET-INFO"}}, "request_id": "req-1", "roles": ["member", 5],
            "is_admin": false, "timestamp": "2024-05-17T09:30:12.345678"});
        RequestContext::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn never_prints_secrets() {
        let c = ctx();
        for s in [format!("{c:?}"), format!("{c}"), format!("{c:#?}")] {
            assert!(!s.contains("SECRET") && !s.contains("hunter2"), "{s}");
        }
        assert!(format!("{c:?}").contains("req-1"));
    }

    #[test]
    fn accessors() {
        let c = ctx();
        assert_eq!(c.user_id(), Some("u1"));
        assert_eq!(c.project_id(), Some("p1"));
        assert_eq!(c.roles(), vec!["member"]);
        assert!(!c.is_admin());
        assert_eq!(c.timestamp().unwrap().to_string(), "2024-05-17 09:30:12.345678");
        assert_eq!(c.to_flat().keys().next().unwrap(), "_context_user");
    }
}
