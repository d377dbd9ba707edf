//! JSON text exactly as Python's `json.dumps(value)` writes it with default arguments
//! (what oslo's `jsonutils.dumps` and zun's `JSONEncodedDict`/`JsonField` store):
//! separators `", "` and `": "`, keys in insertion order, `ensure_ascii=True` (every
//! character outside printable ASCII becomes `\uXXXX`, astral characters a surrogate pair).
//!
//! Because of `ensure_ascii`, JSON columns never hold 4-byte UTF-8 and survive `utf8mb3`.
use serde_json::Value;

/// `json.dumps(value)`.
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // With `arbitrary_precision` the number keeps the text it was parsed from, which
        // for values that came from Python is already Python's repr.
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::dumps;
    use serde_json::json;

    #[test]
    fn matches_python_defaults() {
        // Expected strings produced by CPython 3.11 json.dumps.
        assert_eq!(dumps(&json!({"K": "V", "a": [1, 2]})), r#"{"K": "V", "a": [1, 2]}"#);
        assert_eq!(dumps(&json!([])), "[]");
        assert_eq!(dumps(&json!({})), "{}");
        assert_eq!(dumps(&json!("é😀\u{7f}\u{1}")), r#""\u00e9\ud83d\ude00\u007f\u0001""#);
        assert_eq!(dumps(&json!({"cpuset_cpus": null, "cpuset_mems": null})), r#"{"cpuset_cpus": null, "cpuset_mems": null}"#);
        let v: serde_json::Value = serde_json::from_str(r#"{"x": 0.5, "y": 1.0, "z": -3}"#).unwrap();
        assert_eq!(dumps(&v), r#"{"x": 0.5, "y": 1.0, "z": -3}"#);
        assert_eq!(dumps(&json!("a\"b\\c\nd/")), r#""a\"b\\c\nd/""#);
    }
}
