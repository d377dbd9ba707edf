//! JSON the way CPython's `json` module reads and writes it.
//!
//! oslo.messaging, kombu and oslo.serialization all go through `json.loads` /
//! `json.dumps` with default settings, so to accept exactly what they accept and to
//! produce bodies that are byte-for-byte identical to theirs we mirror those two
//! functions here:
//!
//! - [`parse`] is `json.loads(s)` (strict mode): RFC 8259 plus the `NaN`, `Infinity`
//!   and `-Infinity` tokens, lone `\uD800`-style surrogate escapes, duplicate keys
//!   (last value wins, first position kept), integers of any size up to CPython's
//!   4300-digit `int()` limit, and a nesting limit close to CPython's recursion limit.
//! - [`to_python_json`] is `json.dumps(v)`: separators `", "` and `": "`, insertion
//!   order, `ensure_ascii=True` (`\uXXXX` with lowercase hex, astral characters as
//!   surrogate pairs) and floats printed like Python's `repr(float)` (`1e+16`,
//!   `1e-05`, `0.5`, `-0.0`).
//!
//! What does not map onto [`serde_json::Value`]:
//! - `NaN`, `Infinity` and `-Infinity` become [`Value::Null`]. Python would carry a
//!   float; zun never sends these, so keeping the decode total matters more than the
//!   value. (Reading them never fails, writing them back gives `null`.)
//! - A lone surrogate escape (`"\ud800"`) becomes U+FFFD: Rust strings cannot hold
//!   unpaired surrogates.
//! - Numbers keep their exact source text (serde_json `arbitrary_precision`), so big
//!   integers round-trip exactly. Floats are re-printed through `f64` by the writer,
//!   as Python would after `float()`; a float literal too large for `f64` is written
//!   as `Infinity`, exactly like Python.
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;
use std::str::FromStr;

/// Deepest array/object nesting accepted. CPython's C scanner fails with
/// `RecursionError` once the interpreter's recursion limit (1000, shared with the
/// frames already on the stack of the oslo listener) is reached; 900 sits just below
/// the depth at which the real server starts failing. No real message nests deeper
/// than about 10.
pub const MAX_DEPTH: usize = 900;

/// CPython 3.11's `sys.int_info.default_max_str_digits`: `int()` refuses longer
/// decimal strings, so `json.loads` rejects integer literals with more digits.
pub const MAX_INT_DIGITS: usize = 4300;

/// A JSON syntax error, with Python's wording where it is cheap to match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: char {pos}")]
pub struct PyJsonError {
    pub msg: String,
    /// Byte offset in the input where the error was detected.
    pub pos: usize,
}

/// `json.loads(text)`. See the module doc for the mapping of Python-only values.
pub fn parse(text: &str) -> Result<Value, PyJsonError> {
    // Fast path: serde_json reads what real messages hold exactly as Python does
    // (same values, duplicate keys keep their first position and last value, number
    // text kept verbatim). Whatever it refuses (NaN/Infinity, lone surrogates, nesting
    // deeper than 128) or reads differently from Python (float overflow, integers over
    // 4300 digits) goes through the exact parser below.
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        if numbers_as_python_reads_them(&v) {
            return Ok(v);
        }
    }
    parse_exact(text)
}

/// True when every number in `v` is one Python's `json.loads` reads the same way.
fn numbers_as_python_reads_them(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            // The number's source text (arbitrary_precision), read without copying it.
            let text = n.as_str();
            if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                text.len() <= MAX_INT_DIGITS
            } else {
                n.as_f64().is_some_and(f64::is_finite)
            }
        }
        Value::Array(a) => a.iter().all(numbers_as_python_reads_them),
        Value::Object(m) => m.values().all(numbers_as_python_reads_them),
        _ => true,
    }
}

/// `json.loads(text)` by our own parser (the reference for [`parse`]).
pub fn parse_exact(text: &str) -> Result<Value, PyJsonError> {
    let mut p = Parser { s: text.as_bytes(), text, i: 0 };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("Extra data"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &str) -> PyJsonError {
        PyJsonError { msg: msg.to_string(), pos: self.i }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn starts_with(&self, lit: &str) -> bool {
        self.s[self.i..].starts_with(lit.as_bytes())
    }

    fn value(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        match self.s.get(self.i) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'n') if self.starts_with("null") => {
                self.i += 4;
                Ok(Value::Null)
            }
            Some(b't') if self.starts_with("true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'f') if self.starts_with("false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'N') if self.starts_with("NaN") => {
                self.i += 3;
                Ok(Value::Null)
            }
            Some(b'I') if self.starts_with("Infinity") => {
                self.i += 8;
                Ok(Value::Null)
            }
            Some(b'-') if self.starts_with("-Infinity") => {
                self.i += 9;
                Ok(Value::Null)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("Expecting value")),
        }
    }

    fn number(&mut self) -> Result<Value, PyJsonError> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.s.get(self.i) {
                    self.i += 1;
                }
            }
            _ => {
                self.i = start;
                return Err(self.err("Expecting value"));
            }
        }
        let int_digits = self.i - int_start;
        let mut is_float = false;
        // Fraction: only when at least one digit follows the dot (Python's regex).
        if self.s.get(self.i) == Some(&b'.') && matches!(self.s.get(self.i + 1), Some(b'0'..=b'9')) {
            is_float = true;
            self.i += 1;
            while let Some(b'0'..=b'9') = self.s.get(self.i) {
                self.i += 1;
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            let mut j = self.i + 1;
            if let Some(b'+' | b'-') = self.s.get(j) {
                j += 1;
            }
            if matches!(self.s.get(j), Some(b'0'..=b'9')) {
                is_float = true;
                while let Some(b'0'..=b'9') = self.s.get(j) {
                    j += 1;
                }
                self.i = j;
            }
        }
        if !is_float && int_digits > MAX_INT_DIGITS {
            self.i = start;
            return Err(self.err("Exceeds the limit (4300 digits) for integer string conversion"));
        }
        let lit = &self.text[start..self.i];
        Number::from_str(lit).map(Value::Number).map_err(|e| PyJsonError { msg: format!("bad number: {e}"), pos: start })
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }

    fn string(&mut self) -> Result<String, PyJsonError> {
        // self.s[self.i] == '"'
        self.i += 1;
        let mut out = String::new();
        loop {
            // Copy the run of plain characters in one go.
            let run_start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[run_start..self.i]);
            match self.s.get(self.i) {
                None => return Err(self.err("Unterminated string starting at")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc = self.s.get(self.i + 1).copied();
                    match esc {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let Some(u) = self.hex4(self.i + 2) else {
                                return Err(self.err("Invalid \\uXXXX escape"));
                            };
                            self.i += 6;
                            if (0xD800..0xDC00).contains(&u) && self.s.get(self.i) == Some(&b'\\') && self.s.get(self.i + 1) == Some(&b'u')
                            {
                                if let Some(lo) = self.hex4(self.i + 2) {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        let cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                                        self.i += 6;
                                        continue;
                                    }
                                }
                            }
                            // Lone surrogates cannot live in a Rust string.
                            out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
                            continue;
                        }
                        _ => return Err(self.err("Invalid \\escape")),
                    }
                    self.i += 2;
                }
                Some(_) => return Err(self.err("Invalid control character at")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("maximum recursion depth exceeded while decoding a JSON array"));
        }
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("Expecting ',' delimiter")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, PyJsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("maximum recursion depth exceeded while decoding a JSON object"));
        }
        self.i += 1;
        let mut map = Map::new();
        self.skip_ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("Expecting property name enclosed in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(self.err("Expecting ':' delimiter"));
            }
            self.i += 1;
            self.skip_ws();
            let v = self.value(depth)?;
            // Python dict semantics: a repeated key keeps its first position, last value.
            map.insert(key, v);
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.err("Expecting ',' delimiter")),
            }
        }
    }
}

/// `json.dumps(v)` with Python's defaults (see the module doc).
pub fn to_python_json(v: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, v);
    out
}

/// `json.dumps(d)` of a dict, without wrapping it in a [`Value`] first.
pub fn map_to_python_json(m: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(128);
    write_map(&mut out, m);
    out
}

/// `json.dumps(v)` appended to `out`.
pub fn write_value(out: &mut String, v: &Value) {
    write_value_g::<false>(out, v);
}

/// A JSON string literal with `ensure_ascii=True` escaping.
pub fn write_str(out: &mut String, s: &str) {
    write_str_g::<false>(out, s);
}

/// `json.dumps(d)` appended to `out`.
fn write_map(out: &mut String, m: &Map<String, Value>) {
    write_map_g::<false>(out, m);
}

/// The text of `json.dumps(v)` as it appears inside another JSON string literal
/// (every `"` and `\` of it escaped once more), written in one pass: what an oslo
/// envelope holds between the quotes of `"oslo.message": "..."`. Byte for byte
/// `write_str` of `to_python_json(v)` without the surrounding quotes.
pub fn write_value_quoted(out: &mut String, v: &Value) {
    write_value_g::<true>(out, v);
}

/// [`write_value_quoted`] of a string value (a JSON string literal, escaped again).
pub fn write_str_quoted(out: &mut String, s: &str) {
    write_str_g::<true>(out, s);
}

/// [`write_value_quoted`] of a dict.
pub fn write_map_quoted(out: &mut String, m: &Map<String, Value>) {
    write_map_g::<true>(out, m);
}

/// The writers, generic over `Q`: false writes JSON, true writes that JSON already
/// escaped as the content of a string literal. Only a string's quotes and escapes
/// change between the two (the JSON is pure printable ASCII: `ensure_ascii`).
fn write_map_g<const Q: bool>(out: &mut String, m: &Map<String, Value>) {
    out.push('{');
    for (i, (k, item)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str_g::<Q>(out, k);
        out.push_str(": ");
        write_value_g::<Q>(out, item);
    }
    out.push('}');
}

fn write_value_g<const Q: bool>(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str_g::<Q>(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value_g::<Q>(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => write_map_g::<Q>(out, m),
    }
}

/// True when a number's text is an integer literal (Python `int`), not a float.
pub fn is_int_literal(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

fn write_number(out: &mut String, n: &Number) {
    // The number's source text (serde_json `arbitrary_precision`): no copy.
    let text = n.as_str();
    if is_int_literal(text) {
        // Python ints print exactly; `-0` is just 0.
        if text.trim_start_matches('-').bytes().all(|b| b == b'0') {
            out.push('0');
        } else {
            out.push_str(text);
        }
        return;
    }
    match text.parse::<f64>() {
        Ok(f) => out.push_str(&py_float_repr(f)),
        Err(_) => out.push_str(text),
    }
}

/// Python's `repr(float)` as `json.dumps` prints it (`NaN`, `Infinity`, `-Infinity`
/// for the non-finite values).
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    let mut s = String::new();
    if f.is_sign_negative() {
        s.push('-');
    }
    if !(-4 < decpt && decpt <= 16) {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        let _ = write!(s, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if decpt <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-decpt) as usize));
        s.push_str(&digits);
    } else if decpt as usize >= digits.len() {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', decpt as usize - digits.len()));
        s.push_str(".0");
    } else {
        s.push_str(&digits[..decpt as usize]);
        s.push('.');
        s.push_str(&digits[decpt as usize..]);
    }
    s
}

/// A float as a JSON number that prints as Python's `repr` (`1.0`, `0.5`, `1e-05`,
/// `1e+20`); `null` for NaN and the infinities. The one float writer: stats, claims'
/// messages and the store read floats through it or [`py_float_repr`].
pub fn py_float_value(f: f64) -> Value {
    if !f.is_finite() {
        return Value::Null;
    }
    py_float_repr(f).parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::Null)
}

fn write_str_g<const Q: bool>(out: &mut String, s: &str) {
    let quote = if Q { "\\\"" } else { "\"" };
    out.push_str(quote);
    let mut rest = s;
    loop {
        // Printable ASCII other than `"` and `\\` is copied as is, a run at a time.
        let plain = rest.bytes().position(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\').unwrap_or(rest.len());
        out.push_str(&rest[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        if Q {
            // The escape sequence itself, escaped again: its `\\` doubled, a `"` escaped.
            let mut esc = String::with_capacity(12);
            write_char_escaped(&mut esc, c);
            for b in esc.chars() {
                match b {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    other => out.push(other),
                }
            }
        } else {
            write_char_escaped(out, c);
        }
    }
    out.push_str(quote);
}

/// One character of a JSON string that is not plain printable ASCII, as `json.dumps`
/// writes it.
fn write_char_escaped(out: &mut String, c: char) {
    {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let cp = c as u32;
                if cp > 0xFFFF {
                    let v = cp - 0x10000;
                    let _ = write!(out, "\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                } else {
                    let _ = write!(out, "\\u{cp:04x}");
                }
            }
        }
    }
}

/// Python's type name for the value `json.loads` would produce (`NoneType`, `bool`,
/// `int`, `float`, `str`, `list`, `dict`), for error texts that quote it.
pub fn py_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if is_int_literal(n.as_str()) => "int",
        Value::Number(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `repr()` of the value `json.loads` would produce (`None`, `True`,
/// `'text'`, `[1, 'a']`, `{'k': 1.5}`), close enough for error messages.
pub fn py_repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, v);
    out
}

/// Python's `str()`: like [`py_repr`] except that a string is itself.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn write_repr(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            let t = n.to_string();
            if is_int_literal(&t) {
                out.push_str(&t);
            } else {
                let f = t.parse::<f64>().unwrap_or(f64::NAN);
                out.push_str(&match py_float_repr(f).as_str() {
                    "NaN" => "nan".to_string(),
                    "Infinity" => "inf".to_string(),
                    "-Infinity" => "-inf".to_string(),
                    other => other.to_string(),
                });
            }
        }
        Value::String(s) => {
            // Python picks single quotes unless the text has ' and no ".
            let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
            out.push(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        let _ = write!(out, "\\x{:02x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
        }
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &Value::String(k.clone()));
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        for (f, want) in [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1.5e300, "1.5e+300"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.1, "0.1"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(py_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn parses_python_tokens_and_surrogates() {
        let v = parse(r#"[NaN, Infinity, -Infinity, 18446744073709551616, "\ud83d\ude80", "\ud800x", "\u00e9"]"#).unwrap();
        assert_eq!(v[0], Value::Null);
        assert_eq!(v[1], Value::Null);
        assert_eq!(v[2], Value::Null);
        assert_eq!(v[3].to_string(), "18446744073709551616");
        assert_eq!(v[4], "🚀");
        assert_eq!(v[5], "\u{FFFD}x");
        assert_eq!(v[6], "é");
        assert_eq!(to_python_json(&v), r#"[null, null, null, 18446744073709551616, "\ud83d\ude80", "\ufffdx", "\u00e9"]"#);
    }

    #[test]
    fn rejects_what_python_rejects() {
        for bad in ["", "01", "1.", ".5", "+1", "[1,]", "{\"a\":1,}", "'a'", "\"\x01\"", "\"\\x\"", "nul", "[1] 2", "\u{feff}{}", "{1: 2}"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        assert!(parse(&"9".repeat(4301)).is_err());
        assert!(parse(&"9".repeat(4300)).is_ok());
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        let v = parse(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap();
        assert_eq!(to_python_json(&v), r#"{"a": 3, "b": 2}"#);
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        let v = Value::String("say \"hi\"\\n\t\u{7f}\u{1}é☃🚀/".into());
        assert_eq!(to_python_json(&v), r#""say \"hi\"\\n\t\u007f\u0001\u00e9\u2603\ud83d\ude80/""#);
    }

    #[test]
    fn python_reprs() {
        let v = parse(r#"[null, true, 1, 1.0, "it's", {"k": "v"}]"#).unwrap();
        assert_eq!(py_repr(&v), r#"[None, True, 1, 1.0, "it's", {'k': 'v'}]"#);
        assert_eq!(py_type_name(&v[3]), "float");
        assert_eq!(py_type_name(&v[2]), "int");
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    /// The serde_json fast path and the exact parser agree on every golden body (both
    /// JSON layers) and on the cases where only the exact parser is right.
    #[test]
    fn fast_path_equals_the_exact_parser() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/oslo");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let fixture: Value = serde_json::from_str(&text).unwrap();
            if let Some(body) = fixture.get("body_raw").and_then(Value::as_str) {
                assert_eq!(parse(body).ok(), parse_exact(body).ok());
                if let Ok(outer) = parse_exact(body) {
                    if let Some(inner) = outer.get("oslo.message").and_then(Value::as_str) {
                        assert_eq!(parse(inner).unwrap(), parse_exact(inner).unwrap());
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 20);
        for text in
            ["[NaN, Infinity, -Infinity]", "[1e999]", "\"\\ud800\"", "{\"a\": 1, \"a\": 2}", "[1.0, -0, 1e-07, 18446744073709551616]"]
        {
            assert_eq!(parse(text), parse_exact(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(&deep), parse_exact(&deep));
        let huge = format!("[{}]", "9".repeat(MAX_INT_DIGITS + 1));
        assert_eq!(parse(&huge).is_err(), parse_exact(&huge).is_err());
    }
}
