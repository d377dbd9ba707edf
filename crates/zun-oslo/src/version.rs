//! Version compatibility rules, exactly as the Python libraries apply them.
//!
//! - [`version_is_compatible`] is `oslo_messaging._utils.version_is_compatible`, used
//!   for the envelope (`oslo.version` against `2.0`) and for RPC dispatch (a request's
//!   `version` against the endpoint's, `1.0` for zun's compute manager).
//! - [`object_version_is_compatible`] is `oslo_utils.versionutils.is_compatible`
//!   (same major, requested <= implemented as tuples), used for versioned objects.
//!
//! Both parse components with Python's `int()` semantics, and report the Python
//! exception a malformed version would raise, so the caller can send the same
//! `builtins` failure the real server sends.
use serde_json::Value;

/// The version an RPC request means when it carries no `version` key.
pub const DEFAULT_RPC_VERSION: &str = "1.0";

/// The Python exception a malformed version string raises inside oslo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class}: {message}")]
pub struct VersionError {
    /// Python builtin class name: `AttributeError`, `ValueError` or `IndexError`.
    pub class: &'static str,
    pub message: String,
}

/// Python's `int(s)` for a version component: surrounding whitespace, an optional sign
/// and `_` between digits are allowed.
pub fn py_int(s: &str) -> Result<i64, VersionError> {
    let bad = || VersionError { class: "ValueError", message: format!("invalid literal for int() with base 10: {}", py_quote(s)) };
    let t = s.trim_matches(|c: char| c.is_whitespace());
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return Err(bad());
    }
    let mut v: i64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        // Python also accepts other Unicode decimal digits; versions never use them.
        let d = c.to_digit(10).ok_or_else(bad)?;
        v = v.saturating_mul(10).saturating_add(i64::from(d));
    }
    Ok(if neg { -v } else { v })
}

fn py_quote(s: &str) -> String {
    crate::pyjson::py_repr(&Value::String(s.to_string()))
}

/// The components of a version given as a JSON value (it must be a string: oslo calls
/// `.split('.')` on it).
fn split_value(v: &Value) -> Result<&str, VersionError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(VersionError {
            class: "AttributeError",
            message: format!("'{}' object has no attribute 'split'", crate::pyjson::py_type_name(other)),
        }),
    }
}

fn index_error() -> VersionError {
    VersionError { class: "IndexError", message: "list index out of range".into() }
}

/// oslo.messaging's rule: compatible when the majors are equal, the requested minor is
/// not above the implemented one and, for equal minors, the requested revision (third
/// component, default 0) is not above the implemented one.
///
/// `requested` is the raw JSON value from the message (`None` = key absent, which the
/// caller should first replace by [`DEFAULT_RPC_VERSION`]; oslo answers `False` for a
/// `None` request).
pub fn version_is_compatible(implemented: &str, requested: Option<&Value>) -> Result<bool, VersionError> {
    let Some(requested) = requested else { return Ok(false) };
    if requested.is_null() {
        return Ok(false);
    }
    let req = split_value(requested)?;
    let rp: Vec<&str> = req.split('.').collect();
    let ip: Vec<&str> = implemented.split('.').collect();
    let req_major = py_int(rp[0])?;
    let imp_major = py_int(ip[0])?;
    if req_major != imp_major {
        return Ok(false);
    }
    let req_minor = py_int(rp.get(1).ok_or_else(index_error)?)?;
    let imp_minor = py_int(ip.get(1).ok_or_else(index_error)?)?;
    if req_minor > imp_minor {
        return Ok(false);
    }
    // The revisions are only converted when the minors tie (Python's `and`).
    if req_minor == imp_minor {
        let rev = rp.get(2).map(|s| py_int(s)).transpose()?.unwrap_or(0);
        let imp_rev = ip.get(2).map(|s| py_int(s)).transpose()?.unwrap_or(0);
        if rev > imp_rev {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Convenience: both versions as strings.
pub fn version_str_is_compatible(implemented: &str, requested: &str) -> bool {
    version_is_compatible(implemented, Some(&Value::String(requested.to_string()))).unwrap_or(false)
}

/// A version string as an integer tuple (`"1.44"` -> `[1, 44]`), Python `int()` rules.
pub fn version_tuple(v: &str) -> Result<Vec<i64>, VersionError> {
    v.split('.').map(py_int).collect()
}

/// oslo.versionedobjects' rule (`versionutils.is_compatible(requested, current,
/// same_major=True)`): same major, and `current >= requested` comparing tuples.
pub fn object_version_is_compatible(requested: &str, current: &str) -> Result<bool, VersionError> {
    let r = version_tuple(requested)?;
    let c = version_tuple(current)?;
    if r.first() != c.first() {
        return Ok(false);
    }
    Ok(c >= r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oslo_rpc_rule() {
        let ok = |imp: &str, req: &str| version_is_compatible(imp, Some(&json!(req))).unwrap();
        assert!(ok("1.0", "1.0"));
        assert!(!ok("1.0", "1.3"));
        assert!(!ok("1.0", "2.0"));
        assert!(ok("1.5", "1.3"));
        assert!(ok("2.0", "2.0"));
        assert!(!ok("2.0", "2.1"));
        assert!(!ok("2.0", "3.0"));
        assert!(ok("2.0", "2.0.0"));
        assert!(!ok("2.0", "2.0.1"));
        assert!(ok("2.0", " 2 .0"));
        assert!(!version_is_compatible("1.0", None).unwrap());
        assert!(!version_is_compatible("1.0", Some(&Value::Null)).unwrap());
    }

    #[test]
    fn python_errors() {
        let e = version_is_compatible("1.0", Some(&json!(1.0))).unwrap_err();
        assert_eq!(e.to_string(), "AttributeError: 'float' object has no attribute 'split'");
        let e = version_is_compatible("1.0", Some(&json!("1"))).unwrap_err();
        assert_eq!(e.class, "IndexError");
        let e = version_is_compatible("1.0", Some(&json!("a.b"))).unwrap_err();
        assert_eq!(e.to_string(), "ValueError: invalid literal for int() with base 10: 'a'");
        // The major mismatch is decided before the minor is looked at.
        assert!(!version_is_compatible("1.0", Some(&json!("3"))).unwrap());
    }

    #[test]
    fn object_rule() {
        assert!(object_version_is_compatible("1.0", "1.44").unwrap());
        assert!(object_version_is_compatible("1.44", "1.44").unwrap());
        assert!(!object_version_is_compatible("1.99", "1.44").unwrap());
        assert!(!object_version_is_compatible("2.0", "1.44").unwrap());
        assert!(object_version_is_compatible("1.4.1", "1.44").unwrap());
        assert!(object_version_is_compatible("1", "1.44").unwrap());
        assert!(object_version_is_compatible("x", "1.44").is_err());
    }
}
