//! The codec's error type: why a body or message could not be decoded.
//!
//! Every [`CodecError`] returned by [`crate::decode_body`] corresponds to a
//! delivery the real oslo RPC server settles with `Basic.Reject(requeue=false)` and
//! never answers. Errors from `from_map` constructors concern messages the real server
//! has already acked (oslo acks before it looks inside the message).
use crate::pyjson::PyJsonError;

/// Which JSON layer failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The AMQP body itself (kombu's `json.loads`).
    Body,
    /// The `oslo.message` string inside the 2.0 envelope.
    Message,
    /// The `failure` string of a reply.
    Failure,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layer::Body => "body",
            Layer::Message => "oslo.message",
            Layer::Failure => "failure",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// content_type is missing or not `application/json` (kombu finds no JSON decoder).
    #[error("unsupported content type {0:?} (only application/json is decoded)")]
    ContentType(Option<String>),
    /// The `compression` header names a codec we do not support, or decompression failed.
    #[error("cannot decompress body ({compression}): {detail}")]
    Compression { compression: String, detail: String },
    /// The body is not valid UTF-8.
    #[error("{layer} is not valid UTF-8: {detail}")]
    Utf8 { layer: Layer, detail: String },
    /// Not JSON (or JSON Python refuses: too deep, integer too long, ...).
    #[error("{layer} is not valid JSON: {source}")]
    Json { layer: Layer, source: PyJsonError },
    /// kombu's JSON object hook refused a `{"__type__": ..., "__value__": ...}` object.
    #[error("kombu cannot decode tagged value: {0}")]
    KombuTaggedValue(String),
    /// The 2.0 envelope carries an `oslo.version` oslo does not accept.
    #[error("unsupported envelope version {0}")]
    EnvelopeVersion(String),
    /// `oslo.message` is not a JSON string.
    #[error("oslo.message must be a JSON string, got {0}")]
    EnvelopeMessageType(&'static str),
    /// The decoded message is not a JSON object (oslo builds a dict from it).
    #[error("{layer} is not a JSON object (got {got})")]
    NotAnObject { layer: Layer, got: &'static str },
    /// The message costs more than [`crate::Limits`] allow.
    #[error("message too large: {what}")]
    TooLarge { what: String },
    /// A key of the message has a type this implementation cannot work with.
    #[error("message key {key} has the wrong type: {detail}")]
    BadKey { key: String, detail: String },
}
