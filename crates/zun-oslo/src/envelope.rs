//! The AMQP body: kombu's decoding of it and oslo's 2.0 envelope around the message.
//!
//! [`decode_body`] follows the real server step by step and refuses (with a typed
//! [`CodecError`]) exactly the deliveries it rejects:
//!
//! 1. kombu decompresses when the `compression` header is set (`application/x-gzip`,
//!    alias `gzip` / `zlib`, is a **zlib** stream). When decompression fails kombu keeps
//!    the raw body, and so do we. The other kombu codecs (bz2, lzma, brotli, zstd) are
//!    not implemented and are refused.
//! 2. kombu decodes by content_type: only `application/json` has a decoder. An **empty**
//!    body is never decoded and oslo turns it into an empty dict, whatever the content
//!    type (the real server acks it; it then fails to dispatch and, having no
//!    `_msg_id`, answers nothing). Any other content type, or none, with a non-empty
//!    body is rejected. (Python would also unpickle `application/x-python-serialize`
//!    and friends; we never do.)
//! 3. kombu's `json.loads` (UTF-8, strict) with its object hook: an object whose keys
//!    are exactly `__type__` and `__value__` must name a type kombu knows (`bytes`,
//!    `base64`, `datetime`, `date`, `time`, `decimal`, `uuid`), else the delivery is
//!    rejected. Known tagged values are kept as JSON (Python would turn them into
//!    objects; oslo never produces them).
//! 4. oslo's `deserialize_msg`: a dict with both `oslo.version` and `oslo.message` is an
//!    envelope; its version must be compatible with `2.0` (same major, minor 0, see
//!    [`crate::version`]) and `oslo.message` must be a string holding JSON. Any
//!    other dict is a bare (pre-envelope, "1.0") message and is used as is.
//! 5. oslo builds `dict(message)`: a JSON object, or what Python's `dict()` accepts from
//!    a list (pairs, two-character strings, two-key objects) or an empty string.
//!
//! [`encode_envelope`] writes bodies byte-identical to Python's.
use crate::error::{CodecError, Layer};
use crate::pyjson;
use crate::version::version_is_compatible;
use serde_json::{Map, Value};
use std::io::Read;

pub const ENVELOPE_VERSION_KEY: &str = "oslo.version";
pub const ENVELOPE_MESSAGE_KEY: &str = "oslo.message";
/// The envelope version oslo writes and the one it accepts (major 2, minor 0).
pub const ENVELOPE_VERSION: &str = "2.0";
pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_ENCODING_UTF8: &str = "utf-8";
/// The `compression` header value kombu writes for `kombu_compression = gzip`.
pub const COMPRESSION_GZIP: &str = "application/x-gzip";
/// Upper bound on a decompressed body. Python has none; this only stops a
/// decompression bomb from exhausting memory (oslo messages are at most a few MB).
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 * 1024 * 1024;

/// What one message may cost before it is decoded. zun's largest requests (a container
/// with its environment and labels, a `container_put_archive` whose API body zun-api
/// caps at 112 KiB by default) are far below both; a message above either is refused
/// before it is parsed, as a decode error (rejected, dead-lettered when configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Body size, before and after decompression.
    pub max_bytes: usize,
    /// JSON values (objects, arrays, scalars) in one message.
    pub max_values: usize,
}

/// Default of `[compute] max_message_bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// JSON values one message may hold (a zun container primitive holds a few hundred).
pub const DEFAULT_MAX_MESSAGE_VALUES: usize = 200_000;

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: DEFAULT_MAX_MESSAGE_BYTES, max_values: DEFAULT_MAX_MESSAGE_VALUES }
    }
}

/// An upper bound on the JSON values in `text`, counted without parsing: every `[`,
/// `{` and `,` outside strings, plus one. Strings are skipped with `memchr` (to the next
/// quote or backslash) rather than byte by byte: most of a message is strings, and this
/// scan runs over every body before it is parsed.
fn count_values_at_most(text: &str, limit: usize) -> Result<(), usize> {
    let s = text.as_bytes();
    let mut n = 1usize;
    let mut i = 0usize;
    while let Some(&b) = s.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // An unterminated string (or a backslash ending the text) ends the scan;
                // the parser then refuses the text.
                let Some(j) = memchr::memchr2(b'"', b'\\', s.get(i..).unwrap_or_default()) else {
                    return Ok(());
                };
                i += j + 1;
                if s[i - 1] == b'"' {
                    break;
                }
                i += 1; // the escaped byte
            },
            b'[' | b'{' | b',' => {
                n += 1;
                if n > limit {
                    return Err(n);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_values(text: &str, layer: Layer, limits: &Limits) -> Result<(), CodecError> {
    count_values_at_most(text, limits.max_values)
        .map_err(|_| CodecError::TooLarge { what: format!("{layer} holds more than {} JSON values", limits.max_values) })
}

/// What of the AMQP properties matters for decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyMeta {
    pub content_type: Option<String>,
    /// Informational: kombu decodes `application/json` bodies as UTF-8 whatever this says.
    pub content_encoding: Option<String>,
    /// The `compression` entry of the AMQP headers table, e.g. `application/x-gzip`.
    pub compression: Option<String>,
}

impl BodyMeta {
    /// The properties oslo puts on every message it publishes (uncompressed).
    pub fn oslo_default() -> Self {
        BodyMeta { content_type: Some(CONTENT_TYPE_JSON.into()), content_encoding: Some(CONTENT_ENCODING_UTF8.into()), compression: None }
    }
}

/// Decodes an AMQP body into the inner RPC message map (request or reply), or says why
/// the real server would reject the delivery. See the module doc for the exact rules.
pub fn decode_body(meta: &BodyMeta, body: &[u8]) -> Result<Map<String, Value>, CodecError> {
    decode_body_limited(meta, body, &Limits::default())
}

/// [`decode_body`] under `limits`: a body too large, or holding too many JSON values,
/// is refused before it is parsed.
pub fn decode_body_limited(meta: &BodyMeta, body: &[u8], limits: &Limits) -> Result<Map<String, Value>, CodecError> {
    if body.len() > limits.max_bytes {
        return Err(CodecError::TooLarge { what: format!("body of {} bytes exceeds {} bytes", body.len(), limits.max_bytes) });
    }
    let decompressed;
    let body = match meta.compression.as_deref() {
        None => body,
        Some(c) => match decompress(c, body, limits.max_bytes as u64)? {
            Some(d) => {
                decompressed = d;
                &decompressed[..]
            }
            None => body,
        },
    };
    if body.is_empty() {
        // kombu returns the empty payload undecoded and `dict(b'')` is `{}`.
        return Ok(Map::new());
    }
    if meta.content_type.as_deref() != Some(CONTENT_TYPE_JSON) {
        return Err(CodecError::ContentType(meta.content_type.clone()));
    }
    let text = std::str::from_utf8(body).map_err(|e| CodecError::Utf8 { layer: Layer::Body, detail: e.to_string() })?;
    check_values(text, Layer::Body, limits)?;
    let outer = pyjson::parse(text).map_err(|source| CodecError::Json { layer: Layer::Body, source })?;
    check_kombu_tags(&outer)?;
    // Top-level tagged value: kombu turns it into a Python object; only an empty
    // bytes value then survives `dict()`.
    if let Some(tag) = kombu_tag(&outer) {
        let empty_bytes = matches!(tag, ("bytes" | "base64", Value::String(s)) if s.is_empty());
        return if empty_bytes { Ok(Map::new()) } else { Err(CodecError::NotAnObject { layer: Layer::Body, got: "tagged value" }) };
    }
    let outer = match outer {
        Value::Object(m) => m,
        other => return py_dict(other, Layer::Body),
    };
    if !(outer.contains_key(ENVELOPE_VERSION_KEY) && outer.contains_key(ENVELOPE_MESSAGE_KEY)) {
        return Ok(outer);
    }
    let version = &outer[ENVELOPE_VERSION_KEY];
    match version_is_compatible(ENVELOPE_VERSION, Some(version)) {
        Ok(true) => {}
        _ => return Err(CodecError::EnvelopeVersion(pyjson::py_str(version))),
    }
    let inner_text = match &outer[ENVELOPE_MESSAGE_KEY] {
        Value::String(s) => s,
        other => return Err(CodecError::EnvelopeMessageType(pyjson::py_type_name(other))),
    };
    check_values(inner_text, Layer::Message, limits)?;
    let inner = pyjson::parse(inner_text).map_err(|source| CodecError::Json { layer: Layer::Message, source })?;
    match inner {
        Value::Object(m) => Ok(m),
        other => py_dict(other, Layer::Message),
    }
}

/// Decompresses per kombu's registry. `Ok(None)`: kombu failed and keeps the raw body.
fn decompress(compression: &str, body: &[u8], max: u64) -> Result<Option<Vec<u8>>, CodecError> {
    let max = max.min(MAX_DECOMPRESSED_BYTES);
    match compression {
        "application/x-gzip" | "gzip" | "zlib" => {
            let mut out = Vec::new();
            let mut rd = flate2::read::ZlibDecoder::new(body).take(max + 1);
            match rd.read_to_end(&mut out) {
                Ok(_) if out.len() as u64 > max => Err(CodecError::Compression {
                    compression: compression.into(),
                    detail: format!("decompressed body exceeds {max} bytes"),
                }),
                Ok(_) => Ok(Some(out)),
                Err(_) => Ok(None),
            }
        }
        "application/x-bz2"
        | "bzip2"
        | "bzip"
        | "application/x-lzma"
        | "lzma"
        | "xz"
        | "application/x-brotli"
        | "brotli"
        | "application/zstd"
        | "zstd"
        | "zstandard" => {
            Err(CodecError::Compression { compression: compression.into(), detail: "codec not supported by this implementation".into() })
        }
        // kombu raises on an unknown codec, records the error and keeps the raw body.
        _ => Ok(None),
    }
}

const KOMBU_TYPES: [&str; 7] = ["bytes", "base64", "datetime", "date", "time", "decimal", "uuid"];

fn kombu_tag(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 2 {
        return None;
    }
    let (t, val) = (m.get("__type__")?, m.get("__value__")?);
    Some((t.as_str().unwrap_or("\u{0}not-a-string"), val))
}

/// kombu's object hook, applied to every object of the body: unknown tags and values
/// its decoders cannot take are decode errors.
fn check_kombu_tags(v: &Value) -> Result<(), CodecError> {
    // Iterative walk: the parser allows deep nesting.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(m) => {
                stack.extend(m.values());
                if let Some((t, val)) = kombu_tag(v) {
                    if !KOMBU_TYPES.contains(&t) {
                        return Err(CodecError::KombuTaggedValue(format!("unsupported type {t:?}")));
                    }
                    let ok = match t {
                        "bytes" | "datetime" | "date" | "time" => val.is_string(),
                        "base64" => val.as_str().is_some_and(base64_ok),
                        "decimal" => val.is_string() || val.is_number(),
                        "uuid" => val.as_object().is_some_and(|o| o.get("hex").is_some_and(Value::is_string)),
                        _ => false,
                    };
                    if !ok {
                        return Err(CodecError::KombuTaggedValue(format!("bad value for type {t}")));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `base64.b64decode` (non-validating): non-alphabet characters are dropped, then the
/// length must be a multiple of 4 once padded correctly.
fn base64_ok(s: &str) -> bool {
    let kept: Vec<u8> = s.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'=').collect();
    let data_len = kept.iter().position(|b| *b == b'=').unwrap_or(kept.len());
    data_len % 4 != 1 && kept.len().is_multiple_of(4)
}

/// Python's `dict(x)` for a non-dict JSON value, as oslo applies it to the message.
fn py_dict(v: Value, layer: Layer) -> Result<Map<String, Value>, CodecError> {
    let not_obj = |got| CodecError::NotAnObject { layer, got };
    match v {
        Value::String(s) if s.is_empty() => Ok(Map::new()),
        Value::Array(items) => {
            let mut m = Map::new();
            for item in items {
                let (k, val) = match item {
                    Value::Array(mut pair) if pair.len() == 2 => {
                        let val = pair.pop().unwrap_or(Value::Null);
                        match pair.pop() {
                            Some(Value::String(k)) => (k, val),
                            // Non-string keys: Python builds the dict but oslo then
                            // fails on it; we refuse up front.
                            _ => return Err(not_obj("list with a non-string key")),
                        }
                    }
                    // Iterating a two-key dict yields its two keys.
                    Value::Object(o) if o.len() == 2 => {
                        let mut ks = o.into_iter().map(|(k, _)| k);
                        let k = ks.next().unwrap_or_default();
                        let val = ks.next().unwrap_or_default();
                        (k, Value::String(val))
                    }
                    Value::String(s) if s.chars().count() == 2 => {
                        let mut cs = s.chars();
                        let k = cs.next().map(String::from).unwrap_or_default();
                        let val = cs.next().map(String::from).unwrap_or_default();
                        (k, Value::String(val))
                    }
                    _ => return Err(not_obj("list")),
                };
                m.insert(k, val);
            }
            Ok(m)
        }
        other => Err(not_obj(pyjson::py_type_name(&other))),
    }
}

/// What a 2.0 envelope holds before and after its escaped message.
pub(crate) const ENVELOPE_OPEN: &str = "{\"oslo.version\": \"2.0\", \"oslo.message\": \"";
pub(crate) const ENVELOPE_CLOSE: &str = "\"}";

/// `{"oslo.version": "2.0", "oslo.message": "<msg as JSON>"}`, byte-identical to what
/// Python's oslo.messaging writes for the same message; the message is written already
/// escaped, in one pass.
pub fn encode_envelope(msg: &Map<String, Value>) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    out.push_str(ENVELOPE_OPEN);
    pyjson::write_map_quoted(&mut out, msg);
    out.push_str(ENVELOPE_CLOSE);
    out.into_bytes()
}

/// The 2.0 envelope around an already serialized message.
#[cfg(test)]
pub(crate) fn wrap_envelope(inner: &str) -> Vec<u8> {
    let mut out = String::with_capacity(inner.len() + inner.len() / 8 + 48);
    out.push_str("{\"oslo.version\": \"2.0\", \"oslo.message\": ");
    pyjson::write_str(&mut out, inner);
    out.push('}');
    out.into_bytes()
}

/// kombu's `application/x-gzip` compression (really zlib), for `kombu_compression=gzip`.
pub fn zlib_compress(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan byte by byte, as it was before `memchr`: the reference for the fast one.
    fn count_values_bytewise(text: &str, limit: usize) -> Result<(), usize> {
        let mut n = 1usize;
        let (mut in_str, mut escaped) = (false, false);
        for b in text.bytes() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_str = false;
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'[' | b'{' | b',' => {
                    n += 1;
                    if n > limit {
                        return Err(n);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    #[test]
    fn value_count_scan_equals_the_bytewise_one() {
        // Texts drawn from the bytes that matter (and a multi-byte character), valid JSON
        // or not, against limits around their counts.
        let alphabet = ['"', '\\', '[', ']', '{', '}', ',', ':', 'a', '1', ' ', 'é'];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
            for limit in [0, 1, 2, 3, 5, 8, 1000] {
                assert_eq!(count_values_at_most(&text, limit), count_values_bytewise(&text, limit), "{text:?} limit {limit}");
            }
        }
        let fixture = wrap_envelope(r#"{"method": "x", "args": {"a": [1, 2, {"b": "c,[{\"}"}]}}"#);
        let text = std::str::from_utf8(&fixture).unwrap();
        for limit in 0..12 {
            assert_eq!(count_values_at_most(text, limit), count_values_bytewise(text, limit));
        }
    }

    fn json_meta() -> BodyMeta {
        BodyMeta::oslo_default()
    }

    #[test]
    fn envelope_round_trip() {
        let mut m = Map::new();
        m.insert("method".into(), Value::String("x".into()));
        m.insert("args".into(), serde_json::json!({"s": "é🚀"}));
        let body = encode_envelope(&m);
        assert!(body.is_ascii());
        assert_eq!(decode_body(&json_meta(), &body).unwrap(), m);
    }

    #[test]
    fn one_pass_envelope_is_the_envelope_of_the_dumped_message() {
        let every_char: String = (0u32..0x300).chain([0x2028, 0xfeff, 0x1f680, 0x10ffff]).filter_map(char::from_u32).collect();
        let mut m = Map::new();
        m.insert("method".into(), Value::String("x".into()));
        m.insert(
            "q\"k\\".into(),
            serde_json::json!({"s": every_char, "l": ["\"", "\\", "\\\"", "", 1, -2.5, 1e300, null, false], "e": {}}),
        );
        let two_pass = wrap_envelope(&pyjson::map_to_python_json(&m));
        assert_eq!(encode_envelope(&m), two_pass);
        assert_eq!(decode_body(&json_meta(), &two_pass).unwrap(), m);
    }

    #[test]
    fn python_dict_quirks() {
        let meta = json_meta();
        assert_eq!(decode_body(&meta, b"").unwrap(), Map::new());
        assert_eq!(decode_body(&BodyMeta::default(), b"").unwrap(), Map::new());
        assert_eq!(decode_body(&meta, b"\"\"").unwrap(), Map::new());
        assert_eq!(decode_body(&meta, b"[]").unwrap(), Map::new());
        assert_eq!(
            decode_body(&meta, br#"[["a", 1], "bc"]"#).unwrap(),
            serde_json::from_str::<Map<String, Value>>(r#"{"a":1,"b":"c"}"#).unwrap()
        );
        assert!(decode_body(&meta, b"5").is_err());
        assert!(decode_body(&meta, b"[1]").is_err());
        assert!(decode_body(&meta, br#"{"oslo.version": "2.0", "oslo.message": "5"}"#).is_err());
        assert!(decode_body(&meta, br#"{"oslo.version": "2.0", "oslo.message": {}}"#).is_err());
        assert!(decode_body(&meta, br#"{"oslo.version": 2.0, "oslo.message": "{}"}"#).is_err());
        assert!(decode_body(&meta, br#"{"oslo.version": "2.0.0", "oslo.message": "{}"}"#).is_ok());
        assert!(decode_body(&meta, br#"{"oslo.version": "2.0"}"#).is_ok());
    }

    #[test]
    fn kombu_tags() {
        let meta = json_meta();
        assert!(decode_body(&meta, br#"{"a": {"__type__": "nope", "__value__": 1}}"#).is_err());
        assert!(decode_body(&meta, br#"{"a": {"__type__": "decimal", "__value__": "1.5"}}"#).is_ok());
        assert!(decode_body(&meta, br#"{"a": {"__type__": "x", "__value__": 1, "b": 2}}"#).is_ok());
        assert!(decode_body(&meta, br#"{"__type__": "bytes", "__value__": ""}"#).unwrap().is_empty());
        assert!(decode_body(&meta, br#"{"__type__": "bytes", "__value__": "ab"}"#).is_err());
    }

    #[test]
    fn compression() {
        let mut m = Map::new();
        m.insert("method".into(), Value::String("x".into()));
        let body = encode_envelope(&m);
        let z = zlib_compress(&body);
        assert_eq!(&z[..2], &[0x78, 0x9c]);
        let meta = BodyMeta { compression: Some(COMPRESSION_GZIP.into()), ..json_meta() };
        assert_eq!(decode_body(&meta, &z).unwrap(), m);
        // Not actually compressed: kombu falls back to the raw body.
        assert_eq!(decode_body(&meta, &body).unwrap(), m);
        let bz = BodyMeta { compression: Some("bzip2".into()), ..json_meta() };
        assert!(matches!(decode_body(&bz, &body), Err(CodecError::Compression { .. })));
    }
}
