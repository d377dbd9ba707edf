//! The error type of the Docker adapter.
//!
//! A [`DockerError`] keeps what the domain needs to reproduce zun's reactions:
//! the HTTP status code (zun's `is_not_found` is "the error mentions 404"), Docker's own
//! message (zun's `is_conflict` looks for "not running", "not paused", "paused"), and the
//! request that failed. Its `Display` imitates docker-py's `APIError` text
//! (`404 Client Error for GET /containers/x/json: Not Found ("No such container: x")`), which
//! is what ends up in `status_reason` once wrapped by [`DockerError::zun_message`].

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerErrorKind {
    /// Docker answered with an HTTP error status (`status` is set).
    Api,
    /// An error reported inside a streamed answer (e.g. a pull's `errorDetail`).
    Stream,
    /// No complete answer within the configured timeout.
    Timeout,
    /// The engine could not be reached (socket missing, connection refused, broken pipe...).
    Transport,
    /// Docker's answer could not be decoded.
    Decode,
    /// The adapter was configured with something it cannot use (bad `api_url`).
    Config,
}

/// An error from the Docker engine or from talking to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct DockerError {
    pub kind: DockerErrorKind,
    /// HTTP status code when Docker answered with an error status.
    pub status: Option<u16>,
    /// Docker's message (the `message` of its JSON error body), or a description.
    pub message: String,
    /// The request, e.g. `POST /containers/zun-x/start`.
    pub request: String,
}

impl DockerError {
    pub fn api(status: u16, message: impl Into<String>, request: impl Into<String>) -> Self {
        DockerError { kind: DockerErrorKind::Api, status: Some(status), message: message.into(), request: request.into() }
    }

    pub fn new(kind: DockerErrorKind, message: impl Into<String>, request: impl Into<String>) -> Self {
        DockerError { kind, status: None, message: message.into(), request: request.into() }
    }

    /// Converts a bollard error, remembering the request it came from.
    pub(crate) fn from_bollard(err: bollard::errors::Error, request: &str) -> Self {
        use bollard::errors::Error as E;
        match err {
            E::DockerResponseServerError { status_code, message } => DockerError::api(status_code, message, request),
            E::DockerStreamError { error } => DockerError::new(DockerErrorKind::Stream, error, request),
            E::RequestTimeoutError => DockerError::new(DockerErrorKind::Timeout, "request timed out", request),
            E::JsonDataError { message, .. } => DockerError::new(DockerErrorKind::Decode, message, request),
            e @ (E::JsonSerdeError { .. } | E::APIVersionParseError {} | E::StrParseError { .. }) => {
                DockerError::new(DockerErrorKind::Decode, e.to_string(), request)
            }
            e @ (E::UnsupportedURISchemeError { .. } | E::URLParseError { .. } | E::InvalidURIError { .. }) => {
                DockerError::new(DockerErrorKind::Config, e.to_string(), request)
            }
            other => DockerError::new(DockerErrorKind::Transport, other.to_string(), request),
        }
    }

    /// Docker said 404 (no such container, image, exec instance or path).
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// Docker said the container is not running.
    pub fn is_not_running(&self) -> bool {
        self.message.contains("is not running")
    }

    /// zun's `is_conflict`: the error text mentions `not running`, `not paused` or `paused`.
    /// The manager then raises `Conflict(str(e))` instead of failing the container.
    pub fn is_conflict_state(&self) -> bool {
        ["not running", "not paused", "paused"].iter().any(|s| self.message.contains(s))
    }

    /// zun's `is_not_connected` (Docker answers 500 when disconnecting an unconnected network).
    pub fn is_not_connected(&self) -> bool {
        self.message.contains(" is not connected to the network ")
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == DockerErrorKind::Timeout
    }

    /// The text zun's `DockerError` exception carries: `Docker internal error: <error>.`
    pub fn zun_message(&self) -> String {
        format!("Docker internal error: {self}.")
    }

    fn render(&self) -> String {
        match (self.kind, self.status) {
            (DockerErrorKind::Api, Some(code)) => {
                let class = if code < 500 { "Client" } else { "Server" };
                let mut s = format!("{code} {class} Error for {}: {}", self.request, reason_phrase(code));
                if !self.message.is_empty() {
                    s.push_str(&format!(" (\"{}\")", self.message));
                }
                s
            }
            (DockerErrorKind::Timeout, _) => format!("Timeout waiting for Docker ({}): {}", self.request, self.message),
            (DockerErrorKind::Transport, _) => format!("Cannot talk to Docker ({}): {}", self.request, self.message),
            (DockerErrorKind::Decode, _) => format!("Bad answer from Docker ({}): {}", self.request, self.message),
            (DockerErrorKind::Config, _) => format!("Docker client configuration error: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// The reason phrases Python's `requests` reports for the statuses Docker uses.
fn reason_phrase(code: u16) -> &'static str {
    match code {
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        406 => "Not Acceptable",
        409 => "Conflict",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_imitates_docker_py() {
        let e = DockerError::api(404, "No such container: abc", "POST /containers/abc/start");
        assert_eq!(e.to_string(), "404 Client Error for POST /containers/abc/start: Not Found (\"No such container: abc\")");
        assert_eq!(
            e.zun_message(),
            "Docker internal error: 404 Client Error for POST /containers/abc/start: Not Found (\"No such container: abc\")."
        );
        assert!(e.is_not_found());
        assert!(!e.is_conflict_state());
        let e = DockerError::api(500, "boom", "GET /info");
        assert_eq!(e.to_string(), "500 Server Error for GET /info: Internal Server Error (\"boom\")");
    }

    #[test]
    fn conflict_texts() {
        let e = DockerError::api(409, "Container abc is not running", "POST /containers/abc/pause");
        assert!(e.is_not_running() && e.is_conflict_state());
        let e = DockerError::api(409, "Container abc is not paused", "POST /containers/abc/unpause");
        assert!(!e.is_not_running() && e.is_conflict_state());
        let e = DockerError::api(409, "Container abc is paused, unpause the container before stopping", "x");
        assert!(e.is_conflict_state());
        let e = DockerError::new(DockerErrorKind::Timeout, "request timed out", "GET /info");
        assert!(e.is_timeout() && !e.is_not_found());
    }
}
