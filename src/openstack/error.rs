//! One error type for every OpenStack call: it names the service, the call and what
//! went wrong (an HTTP status with the service's own message, a timeout, a refused
//! connection), so a container's `status_reason` says which service failed and where.
use std::fmt;

/// Which OpenStack service a call went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Keystone,
    Placement,
    Neutron,
    Cinder,
    Glance,
    /// Any other service type from the catalog.
    Other,
}

impl Service {
    /// The catalog service type of this service.
    pub fn service_type(self) -> &'static str {
        match self {
            Service::Keystone => "identity",
            Service::Placement => "placement",
            Service::Neutron => "network",
            Service::Cinder => "volumev3",
            Service::Glance => "image",
            Service::Other => "other",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Keystone => "Keystone",
            Service::Placement => "Placement",
            Service::Neutron => "Neutron",
            Service::Cinder => "Cinder",
            Service::Glance => "Glance",
            Service::Other => "OpenStack",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenStackError {
    /// The service answered with a status the caller did not expect.
    #[error("{service} {call} returned HTTP {status}{}: {detail}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        service: Service,
        /// `METHOD /path` (no query string, no host).
        call: String,
        status: u16,
        /// The service's error code when it gives one (Placement's `placement.concurrent_update`, ...).
        code: Option<String>,
        /// The service's message, trimmed to a few hundred printable characters.
        detail: String,
    },
    /// No answer in time.
    #[error("{service} {call} timed out after {seconds}s")]
    Timeout { service: Service, call: String, seconds: u64 },
    /// The request did not reach the service (refused, reset, DNS, TLS).
    #[error("{service} {call} unreachable: {detail}")]
    Unreachable { service: Service, call: String, detail: String },
    /// The answer could not be understood.
    #[error("{service} {call} gave an unexpected answer: {detail}")]
    Decode { service: Service, call: String, detail: String },
    /// The catalog has no usable endpoint for the service.
    #[error("no {interface} endpoint for service type {service_type}{} in the Keystone catalog", region.as_deref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    NoEndpoint { service_type: String, interface: String, region: Option<String> },
    /// The configuration cannot work (missing credentials, unreadable CA file, ...).
    #[error("OpenStack configuration: {0}")]
    Config(String),
}

impl OpenStackError {
    /// The HTTP status when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            OpenStackError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The service's error code (Placement and some others give one).
    pub fn code(&self) -> Option<&str> {
        match self {
            OpenStackError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// True for the errors a later retry may cure: no answer, or a 5xx / 503 / 429.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenStackError::Timeout { .. } | OpenStackError::Unreachable { .. } => true,
            OpenStackError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The service this error came from (Keystone for a failed token request).
    pub fn service(&self) -> Option<Service> {
        match self {
            OpenStackError::Status { service, .. }
            | OpenStackError::Timeout { service, .. }
            | OpenStackError::Unreachable { service, .. }
            | OpenStackError::Decode { service, .. } => Some(*service),
            OpenStackError::NoEndpoint { .. } => Some(Service::Keystone),
            OpenStackError::Config(_) => None,
        }
    }
}

/// A service's error body made safe for a message: the `title`/`detail`/`message` of
/// the usual OpenStack error shapes when present, else the text; control characters
/// dropped, at most 300 characters.
pub(crate) fn error_detail(body: &[u8]) -> (Option<String>, String) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let mut code = None;
    let mut text = None;
    if let Some(v) = &parsed {
        // Placement / API-WG: {"errors": [{"status", "code", "title", "detail"}]}
        if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
            code = e.get("code").and_then(|c| c.as_str()).map(String::from);
            text = e.get("detail").or_else(|| e.get("title")).and_then(|d| d.as_str()).map(String::from);
        }
        // Neutron: {"NeutronError": {"type", "message", "detail"}}
        if text.is_none() {
            if let Some(e) = v.get("NeutronError") {
                code = e.get("type").and_then(|c| c.as_str()).map(String::from);
                text = e.get("message").and_then(|d| d.as_str()).map(String::from);
            }
        }
        // Keystone and others: {"error": {"code", "title", "message"}} or {"<kind>": {"message"}}
        if text.is_none() {
            if let Some(obj) = v.as_object() {
                if let Some(m) = obj.values().find_map(|e| e.get("message").and_then(|m| m.as_str())) {
                    text = Some(m.to_string());
                }
            }
        }
    }
    let text = text.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (code.map(|c| clean(&c, 100)), clean(&text, 300))
}

fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "...";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_placement_errors() {
        let body = br#"{"errors": [{"status": 409, "title": "Conflict", "detail": "There was a conflict when trying to complete your request.\n\n resource provider generation conflict  ", "code": "placement.concurrent_update", "request_id": "req-1"}]}"#;
        let (code, detail) = error_detail(body);
        assert_eq!(code.as_deref(), Some("placement.concurrent_update"));
        assert!(detail.contains("resource provider generation conflict"), "{detail}");
        assert!(!detail.contains('\n'));
    }

    #[test]
    fn reads_neutron_and_keystone_errors() {
        let (code, d) =
            error_detail(br#"{"NeutronError": {"type": "PortNotFound", "message": "Port x could not be found.", "detail": ""}}"#);
        assert_eq!(code.as_deref(), Some("PortNotFound"));
        assert_eq!(d, "Port x could not be found.");
        let (_, d) = error_detail(
            br#"{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}"#,
        );
        assert_eq!(d, "The request you have made requires authentication.");
    }

    #[test]
    fn bounds_and_cleans_text() {
        let long = "x\u{1b}".repeat(400);
        let (_, d) = error_detail(long.as_bytes());
        assert!(d.len() <= 310);
        assert!(!d.contains('\u{1b}'));
    }

    #[test]
    fn message_names_service_call_and_status() {
        let e = OpenStackError::Status {
            service: Service::Placement,
            call: "PUT /resource_providers/abc/inventories".into(),
            status: 409,
            code: Some("placement.concurrent_update".into()),
            detail: "generation conflict".into(),
        };
        assert_eq!(
            e.to_string(),
            "Placement PUT /resource_providers/abc/inventories returned HTTP 409 (placement.concurrent_update): generation conflict"
        );
        assert!(!e.is_transient());
    }
}
