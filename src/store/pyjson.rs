//! zun stores JSON columns as Python's `json.dumps` writes them (separators `", "` and
//! `": "`, insertion order, `ensure_ascii`, so JSON columns never hold 4-byte UTF-8 and
//! survive `utf8mb3`). The codec's Python-compatible writer serves the store too.
pub use crate::oslo::pyjson::to_python_json as dumps;
