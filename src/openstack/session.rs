//! The Keystone v3 session: the service's own token (from `[keystone_auth]`), the
//! service catalog, and HTTP calls to any OpenStack service found in it.
//!
//! - Auth plugins as keystoneauth loads them from `[keystone_auth]`: `password` /
//!   `v3password` (user by id, or by name and domain; project, domain or system scope)
//!   and `v3applicationcredential` (by id, or by name and user).
//! - The token is cached and renewed before it expires (the earlier of two minutes and a
//!   third of its lifetime before); callers that need a token while one is being fetched
//!   wait for that one fetch (single-flight).
//! - A service call answered 401 with the service token renews the token once and is
//!   retried once. Idempotent calls (GET, PUT, DELETE, HEAD) that could not reach the
//!   service are retried twice with a short backoff (`backon`). Every call has a timeout.
//! - Calls made as the user ([`Auth::User`]) carry the user's token from the RPC context
//!   and use the catalog of its `auth_token_info` when present, else the service's.
//! - Secrets never print: passwords live in [`crate::config::Secret`], tokens in
//!   [`TokenId`]; logs name the service, method, path and status only.
use super::error::{error_detail, OpenStackError, Service};
use crate::config::{ClientSection, KeystoneAuthSection, Secret, Settings};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request timeout when `[keystone_auth] timeout` is unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is renewed this long before it expires at the latest.
const RENEW_MARGIN: Duration = Duration::from_secs(120);

/// A Keystone token. Prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenId(Secret);

impl TokenId {
    pub fn new(value: impl Into<String>) -> Self {
        TokenId(Secret::new(value))
    }
    /// The token itself, for the `X-Auth-Token` header only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenId(***)")
    }
}

/// One endpoint of the catalog.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEndpoint {
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
}

/// One service of the catalog.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

/// The Keystone v3 service catalog.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Catalog {
    pub services: Vec<CatalogService>,
}

impl Catalog {
    /// The catalog of a v3 token body (`{"token": {"catalog": [...]}}`, as Keystone returns
    /// it and as `auth_token_info` carries it), or of the bare `token` object.
    pub fn from_token_body(body: &Value) -> Option<Catalog> {
        let token = body.get("token").unwrap_or(body);
        serde_json::from_value(token.get("catalog")?.clone()).ok()
    }

    /// The URL of `service_type` at `interface` (`public`, `internal`, `admin`, or
    /// keystoneauth's `publicURL` spellings), in `region` when given. The first match in
    /// catalog order wins, as keystoneauth does.
    pub fn endpoint(&self, service_type: &str, interface: &str, region: Option<&str>) -> Option<&str> {
        let interface = normalize_interface(interface);
        self.services
            .iter()
            .filter(|s| s.service_type == service_type)
            .flat_map(|s| s.endpoints.iter())
            .find(|e| {
                e.interface == interface && region.is_none_or(|r| e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r))
            })
            .map(|e| e.url.as_str())
    }
}

/// `publicURL` → `public` (zun's `endpoint_type` values), lower case otherwise.
pub fn normalize_interface(interface: &str) -> String {
    let i = interface.trim();
    let i = i.strip_suffix("URL").unwrap_or(i);
    i.to_ascii_lowercase()
}

/// A token with what came with it.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: TokenId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub catalog: Arc<Catalog>,
}

impl Token {
    /// When to stop using it: the earlier of two minutes and a third of its lifetime
    /// before it expires.
    pub fn renew_at(&self) -> DateTime<Utc> {
        let lifetime = (self.expires_at - self.issued_at).to_std().unwrap_or_default();
        let margin = RENEW_MARGIN.min(lifetime / 3);
        self.expires_at - chrono::Duration::from_std(margin).unwrap_or_default()
    }

    pub fn needs_renewal(&self, now: DateTime<Utc>) -> bool {
        now >= self.renew_at()
    }
}

/// The user's own credentials, from an RPC request context: its `auth_token` and, when
/// zun-api sent it, `auth_token_info` (the token body with the user's catalog).
#[derive(Clone)]
pub struct UserToken {
    token: TokenId,
    catalog: Option<Arc<Catalog>>,
}

impl UserToken {
    pub fn new(auth_token: &str, auth_token_info: Option<&Value>) -> Self {
        UserToken { token: TokenId::new(auth_token), catalog: auth_token_info.and_then(Catalog::from_token_body).map(Arc::new) }
    }

    pub fn has_catalog(&self) -> bool {
        self.catalog.is_some()
    }
}

impl fmt::Debug for UserToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserToken").field("token", &"***").field("catalog", &self.catalog.is_some()).finish()
    }
}

/// Whose token a call carries.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// The service's own token (`[keystone_auth]`), renewed as needed.
    Service,
    /// The user's token from the RPC context (never renewed: a 401 is the caller's error).
    User(&'a UserToken),
}

/// The HTTP method of a [`Request`].
pub use reqwest::Method;

/// One call to a service: method, path below the catalog endpoint, query, JSON body,
/// microversion, extra headers.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Starts with `/`; appended to the endpoint URL. Build segments from wire values with
    /// [`path_segment`].
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Sent as `OpenStack-API-Version: <service type> <version>`.
    pub microversion: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Request { method, path: path.into(), query: Vec::new(), body: None, microversion: None, headers: Vec::new() }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::POST, path).json(body)
    }
    pub fn put(path: impl Into<String>, body: Value) -> Self {
        Self::new(Method::PUT, path).json(body)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }
    pub fn microversion(mut self, version: impl Into<String>) -> Self {
        self.microversion = Some(version.into());
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// `GET /path` for error messages (no query, no host).
    pub fn call(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
    fn idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::PUT | Method::DELETE | Method::HEAD)
    }
}

/// Percent-encodes one path segment (a name or id taken from the wire).
pub fn path_segment(s: &str) -> String {
    // Unreserved characters stay; `.` is encoded so no segment can be `..`.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// A service's answer, whatever its status.
#[derive(Debug)]
pub struct Response {
    pub service: Service,
    pub call: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Ok(self)` for a 2xx, else the error naming the service, call and status.
    pub fn check(self) -> Result<Response, OpenStackError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    /// The error for this answer (whatever its status).
    pub fn error(&self) -> OpenStackError {
        let (code, detail) = error_detail(&self.body);
        OpenStackError::Status { service: self.service, call: self.call.clone(), status: self.status, code, detail }
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, OpenStackError> {
        serde_json::from_slice(&self.body).map_err(|e| OpenStackError::Decode {
            service: self.service,
            call: self.call.clone(),
            detail: e.to_string(),
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What we send to `POST /v3/auth/tokens`. Holds secrets: never printed.
#[derive(Clone)]
struct AuthBody(Value);

impl fmt::Debug for AuthBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthBody(***)")
    }
}

struct Inner {
    /// `.../v3`, no trailing slash.
    auth_url: String,
    body: AuthBody,
    http: reqwest::Client,
    timeout: Duration,
    tls: TlsOptions,
    cache: tokio::sync::Mutex<Option<Arc<Token>>>,
    issued: AtomicU64,
}

/// The service's Keystone session. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("auth_url", &self.inner.auth_url).finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `[keystone_auth]`. Checks the options (no network yet).
    pub fn new(conf: &KeystoneAuthSection) -> Result<Session, OpenStackError> {
        let auth_url = conf
            .auth_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| OpenStackError::Config("[keystone_auth] auth_url is not set".into()))?;
        let auth_url = v3_url(auth_url)?;
        let body = AuthBody(auth_body(conf)?);
        let timeout =
            conf.timeout.filter(|t| t.is_finite() && *t > 0.0).map(|t| Duration::from_secs_f64(t.min(3600.0))).unwrap_or(DEFAULT_TIMEOUT);
        if conf.certfile.is_some() || conf.keyfile.is_some() {
            return Err(OpenStackError::Config("[keystone_auth] certfile/keyfile (TLS client certificates) are not supported".into()));
        }
        let tls = TlsOptions { insecure: conf.insecure, ca_file: conf.cafile.clone() };
        let http = http_client(&tls, timeout)?;
        Ok(Session {
            inner: Arc::new(Inner { auth_url, body, http, timeout, tls, cache: tokio::sync::Mutex::new(None), issued: AtomicU64::new(0) }),
        })
    }

    /// `Some(session)` when `[keystone_auth] auth_url` is set, `None` for a standalone worker.
    pub fn from_settings(settings: &Settings) -> Result<Option<Session>, OpenStackError> {
        if !settings.keystone_auth.configured() {
            return Ok(None);
        }
        Session::new(&settings.keystone_auth).map(Some)
    }

    /// The Keystone v3 URL in use (`.../v3`).
    pub fn auth_url(&self) -> &str {
        &self.inner.auth_url
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// How many tokens this session has obtained (for tests and metrics).
    pub fn tokens_issued(&self) -> u64 {
        self.inner.issued.load(Ordering::Relaxed)
    }

    /// A valid service token: the cached one, or a new one when it is missing or near
    /// expiry. Concurrent callers share one renewal.
    pub async fn token(&self) -> Result<Arc<Token>, OpenStackError> {
        let mut cache = self.inner.cache.lock().await;
        if let Some(t) = cache.as_ref() {
            if !t.needs_renewal(Utc::now()) {
                return Ok(t.clone());
            }
        }
        let fresh = Arc::new(self.issue().await?);
        *cache = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `used` if it is still the cached token (after a 401), so the next
    /// [`Session::token`] fetches a new one. A token renewed meanwhile is kept.
    pub async fn invalidate(&self, used: &TokenId) {
        let mut cache = self.inner.cache.lock().await;
        if cache.as_ref().is_some_and(|t| &t.id == used) {
            *cache = None;
        }
    }

    /// `POST /v3/auth/tokens`, retried (backon) while Keystone cannot be reached.
    async fn issue(&self) -> Result<Token, OpenStackError> {
        use backon::{ExponentialBuilder, Retryable};
        let call = "POST /v3/auth/tokens".to_string();
        let attempt = || async {
            let url = format!("{}/auth/tokens", self.inner.auth_url);
            let started = Instant::now();
            let resp = self.inner.http.post(&url).json(&self.inner.body.0).send().await;
            let resp = resp.map_err(|e| transport_error(Service::Keystone, &call, &e, self.inner.timeout))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| transport_error(Service::Keystone, &call, &e, self.inner.timeout))?;
            tracing::debug!(service = "keystone", call = %call, status, elapsed_ms = started.elapsed().as_millis() as u64, "keystone token request");
            let r = Response { service: Service::Keystone, call: call.clone(), status, headers, body };
            let r = r.check()?;
            parse_token(&r)
        };
        let token = attempt
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2))
            .when(|e: &OpenStackError| matches!(e, OpenStackError::Unreachable { .. }))
            .await?;
        self.inner.issued.fetch_add(1, Ordering::Relaxed);
        tracing::info!(expires_at = %token.expires_at, "obtained a Keystone token");
        Ok(token)
    }

    /// A client for one service (`service.service_type()`), found in the catalog with the
    /// `endpoint_type` and `region_name` of its `[<service>_client]` section, with that
    /// section's TLS options (falling back to `[keystone_auth]`'s).
    pub fn client(&self, service: Service, section: &ClientSection) -> Result<ServiceClient, OpenStackError> {
        self.client_for_type(service, service.service_type(), section)
    }

    /// As [`Session::client`], for an explicit catalog service type.
    pub fn client_for_type(&self, service: Service, service_type: &str, section: &ClientSection) -> Result<ServiceClient, OpenStackError> {
        if section.cert_file.is_some() || section.key_file.is_some() {
            return Err(OpenStackError::Config(format!("cert_file/key_file (TLS client certificates) for {service} are not supported")));
        }
        let tls = TlsOptions {
            insecure: section.insecure || self.inner.tls.insecure,
            ca_file: section.ca_file.clone().or_else(|| self.inner.tls.ca_file.clone()),
        };
        let http = if tls == self.inner.tls { self.inner.http.clone() } else { http_client(&tls, self.inner.timeout)? };
        Ok(ServiceClient {
            session: self.clone(),
            service,
            service_type: service_type.to_string(),
            interface: normalize_interface(&section.endpoint_type),
            region: section.region_name.clone().filter(|r| !r.is_empty()),
            endpoint_override: None,
            http,
        })
    }
}

/// Calls to one OpenStack service.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    session: Session,
    service: Service,
    service_type: String,
    interface: String,
    region: Option<String>,
    endpoint_override: Option<String>,
    http: reqwest::Client,
}

impl ServiceClient {
    pub fn service(&self) -> Service {
        self.service
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Uses `url` instead of the catalog's endpoint (tests, or a deployment that wants it).
    pub fn with_endpoint_override(mut self, url: impl Into<String>) -> Self {
        self.endpoint_override = Some(url.into());
        self
    }

    /// The endpoint URL the call would go to, without a trailing slash.
    pub async fn endpoint(&self, auth: Auth<'_>) -> Result<String, OpenStackError> {
        if let Some(url) = &self.endpoint_override {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let user_catalog = match auth {
            Auth::User(u) => u.catalog.clone(),
            Auth::Service => None,
        };
        let catalog = match user_catalog {
            Some(c) => c,
            None => self.session.token().await?.catalog.clone(),
        };
        catalog
            .endpoint(&self.service_type, &self.interface, self.region.as_deref())
            .map(|u| u.trim_end_matches('/').to_string())
            .ok_or_else(|| OpenStackError::NoEndpoint {
                service_type: self.service_type.clone(),
                interface: self.interface.clone(),
                region: self.region.clone(),
            })
    }

    /// Sends `req` with `auth`'s token and returns the answer whatever its status (use
    /// [`Response::check`]). A 401 with the service token renews it and retries once;
    /// an idempotent call that could not reach the service is retried twice.
    pub async fn send(&self, auth: Auth<'_>, req: &Request) -> Result<Response, OpenStackError> {
        use backon::{ExponentialBuilder, Retryable};
        let once = || async { self.send_once(auth, req).await };
        let resp = once
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2))
            .when(|e: &OpenStackError| req.idempotent() && matches!(e, OpenStackError::Unreachable { .. }))
            .await?;
        Ok(resp)
    }

    /// [`ServiceClient::send`] then [`Response::check`].
    pub async fn call(&self, auth: Auth<'_>, req: &Request) -> Result<Response, OpenStackError> {
        self.send(auth, req).await?.check()
    }

    /// A call whose request body is streamed (`body` builds it, once per attempt) and
    /// whose answer the caller reads itself (downloads): the headers are in, the body is
    /// not. `timeout` bounds the whole transfer (the session's timeout is for small
    /// calls). A service token refused with 401 is renewed once, as in [`Self::send`];
    /// nothing else is retried. A non-2xx answer is read (bounded) into the error.
    pub async fn send_raw(
        &self,
        auth: Auth<'_>,
        req: &Request,
        body: Option<&(dyn Fn() -> Result<reqwest::Body, OpenStackError> + Sync)>,
        timeout: Duration,
    ) -> Result<reqwest::Response, OpenStackError> {
        let token = match auth {
            Auth::User(user) => user.token.clone(),
            Auth::Service => self.session.token().await?.id.clone(),
        };
        let mut resp = self.raw_attempt(auth, &token, req, body, timeout).await?;
        if resp.status().as_u16() == 401 && matches!(auth, Auth::Service) {
            tracing::info!(service = %self.service, call = %req.call(), "service token refused (401); renewing it once");
            self.session.invalidate(&token).await;
            let token = self.session.token().await?.id.clone();
            resp = self.raw_attempt(auth, &token, req, body, timeout).await?;
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        // An error body is small; a hostile one is cut at 64 KiB.
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            bytes.extend_from_slice(&chunk[..chunk.len().min(65536 - bytes.len().min(65536))]);
            if bytes.len() >= 65536 {
                break;
            }
        }
        Err(Response { service: self.service, call: req.call(), status, headers, body: bytes.into() }.error())
    }

    /// The request's URL: the service's endpoint (catalog or override), its path, its query.
    async fn url(&self, auth: Auth<'_>, req: &Request) -> Result<url::Url, OpenStackError> {
        let base = self.endpoint(auth).await?;
        let mut url = url::Url::parse(&format!("{base}{}", req.path))
            .map_err(|e| OpenStackError::Config(format!("bad {} URL {base}{}: {e}", self.service, req.path)))?;
        if !req.query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &req.query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn raw_attempt(
        &self,
        auth: Auth<'_>,
        token: &TokenId,
        req: &Request,
        body: Option<&(dyn Fn() -> Result<reqwest::Body, OpenStackError> + Sync)>,
        timeout: Duration,
    ) -> Result<reqwest::Response, OpenStackError> {
        let call = req.call();
        let url = self.url(auth, req).await?;
        let mut rb = self.http.request(req.method.clone(), url).header("X-Auth-Token", token.expose()).timeout(timeout);
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(make) = body {
            rb = rb.body(make()?);
        }
        let resp = rb.send().await.map_err(|e| transport_error(self.service, &call, &e, timeout))?;
        tracing::debug!(service = %self.service, call = %call, status = resp.status().as_u16(), "openstack transfer started");
        Ok(resp)
    }

    async fn send_once(&self, auth: Auth<'_>, req: &Request) -> Result<Response, OpenStackError> {
        match auth {
            Auth::User(user) => self.attempt(auth, &user.token, req).await,
            Auth::Service => {
                let token = self.session.token().await?;
                let resp = self.attempt(auth, &token.id, req).await?;
                if resp.status != 401 {
                    return Ok(resp);
                }
                tracing::info!(service = %self.service, call = %req.call(), "service token refused (401); renewing it once");
                self.session.invalidate(&token.id).await;
                let token = self.session.token().await?;
                self.attempt(auth, &token.id, req).await
            }
        }
    }

    async fn attempt(&self, auth: Auth<'_>, token: &TokenId, req: &Request) -> Result<Response, OpenStackError> {
        let call = req.call();
        let url = self.url(auth, req).await?;
        let mut rb = self
            .http
            .request(req.method.clone(), url)
            .header("X-Auth-Token", token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(v) = &req.microversion {
            rb = rb.header("OpenStack-API-Version", format!("{} {v}", self.service_type));
        }
        for (k, v) in &req.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(body) = &req.body {
            rb = rb.json(body);
        }
        let started = Instant::now();
        let timeout = self.session.inner.timeout;
        let resp = rb.send().await.map_err(|e| transport_error(self.service, &call, &e, timeout))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| transport_error(self.service, &call, &e, timeout))?;
        tracing::debug!(service = %self.service, call = %call, status, elapsed_ms = started.elapsed().as_millis() as u64, "openstack call");
        Ok(Response { service: self.service, call, status, headers, body })
    }
}

fn transport_error(service: Service, call: &str, e: &reqwest::Error, timeout: Duration) -> OpenStackError {
    if e.is_timeout() {
        return OpenStackError::Timeout { service, call: call.to_string(), seconds: timeout.as_secs() };
    }
    // The chain of sources says what happened (refused, reset, TLS); the URL is not secret.
    let mut detail = String::from(if e.is_connect() {
        "cannot connect"
    } else if e.is_request() {
        "request failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "HTTP error"
    });
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    OpenStackError::Unreachable { service, call: call.to_string(), detail }
}

fn parse_token(r: &Response) -> Result<Token, OpenStackError> {
    let decode = |detail: &str| OpenStackError::Decode { service: Service::Keystone, call: r.call.clone(), detail: detail.into() };
    let id = r.header("x-subject-token").filter(|t| !t.is_empty()).ok_or_else(|| decode("no X-Subject-Token header"))?;
    #[derive(Deserialize)]
    struct Body {
        token: TokenBody,
    }
    #[derive(Deserialize)]
    struct TokenBody {
        expires_at: DateTime<Utc>,
        issued_at: Option<DateTime<Utc>>,
        #[serde(default)]
        catalog: Option<Catalog>,
        #[serde(default)]
        user: Option<IdOnly>,
        #[serde(default)]
        project: Option<IdOnly>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    let b: Body = r.json()?;
    let t = b.token;
    Ok(Token {
        id: TokenId::new(id),
        issued_at: t.issued_at.unwrap_or_else(Utc::now),
        expires_at: t.expires_at,
        user_id: t.user.map(|u| u.id),
        project_id: t.project.map(|p| p.id),
        catalog: Arc::new(t.catalog.unwrap_or_default()),
    })
}

/// keystoneauth's `auth_url` → the v3 API root: `.../v3` kept, `.../v2.0` replaced, else
/// `/v3` appended (the generic plugins discover it; every Keystone serves it there).
fn v3_url(auth_url: &str) -> Result<String, OpenStackError> {
    let u = auth_url.trim().trim_end_matches('/');
    let parsed = url::Url::parse(u).map_err(|e| OpenStackError::Config(format!("[keystone_auth] auth_url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(OpenStackError::Config("[keystone_auth] auth_url must be http or https".into()));
    }
    Ok(if u.ends_with("/v3") {
        u.to_string()
    } else if let Some(base) = u.strip_suffix("/v2.0") {
        format!("{base}/v3")
    } else {
        format!("{u}/v3")
    })
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `{"id": ...}` or `{"name": ...}` of a domain, from an id/name option pair with the
/// generic plugin's `default_domain_*` fallback.
fn domain_ref(id: &Option<String>, name: &Option<String>, conf: &KeystoneAuthSection) -> Option<Value> {
    if let Some(id) = nonempty(id) {
        return Some(json!({ "id": id }));
    }
    if let Some(name) = nonempty(name) {
        return Some(json!({ "name": name }));
    }
    if let Some(id) = nonempty(&conf.default_domain_id) {
        return Some(json!({ "id": id }));
    }
    nonempty(&conf.default_domain_name).map(|name| json!({ "name": name }))
}

/// The user object: by id, or by name with its domain.
fn user_ref(conf: &KeystoneAuthSection) -> Result<serde_json::Map<String, Value>, OpenStackError> {
    let mut user = serde_json::Map::new();
    if let Some(id) = nonempty(&conf.user_id) {
        user.insert("id".into(), json!(id));
    } else if let Some(name) = nonempty(&conf.username) {
        user.insert("name".into(), json!(name));
        let domain = domain_ref(&conf.user_domain_id, &conf.user_domain_name, conf)
            .ok_or_else(|| OpenStackError::Config("[keystone_auth] username needs user_domain_name or user_domain_id".into()))?;
        user.insert("domain".into(), domain);
    } else {
        return Err(OpenStackError::Config("[keystone_auth] needs username or user_id".into()));
    }
    Ok(user)
}

/// The token request for `[keystone_auth]` (keystoneauth's plugin semantics).
fn auth_body(conf: &KeystoneAuthSection) -> Result<Value, OpenStackError> {
    if nonempty(&conf.trust_id).is_some() {
        return Err(OpenStackError::Config("[keystone_auth] trust_id is not supported".into()));
    }
    let auth_type = conf.auth_type.trim();
    match auth_type {
        "" | "password" | "v3password" => {
            let mut user = user_ref(conf)?;
            let password = conf
                .password
                .as_ref()
                .filter(|p| !p.expose().is_empty())
                .ok_or_else(|| OpenStackError::Config("[keystone_auth] password is not set".into()))?;
            user.insert("password".into(), json!(password.expose()));
            let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": user}}});
            if let Some(scope) = scope(conf)? {
                auth["scope"] = scope;
            }
            Ok(json!({ "auth": auth }))
        }
        "v3applicationcredential" | "applicationcredential" => {
            let secret = conf
                .application_credential_secret
                .as_ref()
                .filter(|s| !s.expose().is_empty())
                .ok_or_else(|| OpenStackError::Config("[keystone_auth] application_credential_secret is not set".into()))?;
            let mut cred = serde_json::Map::new();
            if let Some(id) = nonempty(&conf.application_credential_id) {
                cred.insert("id".into(), json!(id));
            } else if let Some(name) = nonempty(&conf.application_credential_name) {
                cred.insert("name".into(), json!(name));
                cred.insert("user".into(), Value::Object(user_ref(conf)?));
            } else {
                return Err(OpenStackError::Config(
                    "[keystone_auth] v3applicationcredential needs application_credential_id or application_credential_name".into(),
                ));
            }
            cred.insert("secret".into(), json!(secret.expose()));
            // An application credential carries its own scope: none is sent.
            Ok(json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": cred}}}))
        }
        other => Err(OpenStackError::Config(format!(
            "[keystone_auth] auth_type {other:?} is not supported (password, v3password, v3applicationcredential)"
        ))),
    }
}

fn scope(conf: &KeystoneAuthSection) -> Result<Option<Value>, OpenStackError> {
    if let Some(id) = nonempty(&conf.project_id) {
        return Ok(Some(json!({"project": {"id": id}})));
    }
    if let Some(name) = nonempty(&conf.project_name) {
        let domain = domain_ref(&conf.project_domain_id, &conf.project_domain_name, conf)
            .ok_or_else(|| OpenStackError::Config("[keystone_auth] project_name needs project_domain_name or project_domain_id".into()))?;
        return Ok(Some(json!({"project": {"name": name, "domain": domain}})));
    }
    if let Some(id) = nonempty(&conf.domain_id) {
        return Ok(Some(json!({"domain": {"id": id}})));
    }
    if let Some(name) = nonempty(&conf.domain_name) {
        return Ok(Some(json!({"domain": {"name": name}})));
    }
    if let Some(s) = nonempty(&conf.system_scope) {
        return Ok(Some(json!({"system": {s: true}})));
    }
    Ok(None)
}

/// TLS options of one HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsOptions {
    insecure: bool,
    ca_file: Option<String>,
}

/// A reqwest client over rustls (ring) with the system's roots plus `ca_file`, or no
/// verification at all when `insecure`.
fn http_client(tls: &TlsOptions, timeout: Duration) -> Result<reqwest::Client, OpenStackError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenStackError::Config(format!("TLS: {e}")))?;
    let config = if tls.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider))).with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = tls.ca_file.as_deref().filter(|p| !p.is_empty()) {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| OpenStackError::Config(format!("CA file {path}: {e}")))?;
            let mut n = 0;
            for cert in certs {
                let cert = cert.map_err(|e| OpenStackError::Config(format!("CA file {path}: {e}")))?;
                roots.add(cert).map_err(|e| OpenStackError::Config(format!("CA file {path}: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(OpenStackError::Config(format!("CA file {path} holds no certificate")));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| OpenStackError::Config(format!("HTTP client: {e}")))
}

/// `insecure = true`: accepts any server certificate (signatures still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog as Keystone 30 returned it for the `zun` service user on this machine's stack.
    const CATALOG: &str = r#"{"token": {"catalog": [
        {"endpoints": [
            {"id": "a1", "interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:35357/v3/", "region": "RegionOne"},
            {"id": "a2", "interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:35357/v3/", "region": "RegionOne"}],
         "id": "s1", "type": "identity", "name": "keystone"},
        {"endpoints": [
            {"id": "b1", "interface": "public", "region_id": "RegionTwo", "url": "http://10.0.0.2:8778", "region": "RegionTwo"},
            {"id": "b2", "interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:8778", "region": "RegionOne"},
            {"id": "b3", "interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:8778/internal", "region": "RegionOne"}],
         "id": "s2", "type": "placement", "name": "placement"},
        {"endpoints": [
            {"id": "c1", "interface": "admin", "region_id": "RegionOne", "url": "http://127.0.0.1:9696/", "region": "RegionOne"}],
         "id": "s3", "type": "network", "name": "neutron"}]}}"#;

    fn catalog() -> Catalog {
        Catalog::from_token_body(&serde_json::from_str(CATALOG).unwrap()).unwrap()
    }

    #[test]
    fn endpoint_by_type_interface_region() {
        let c = catalog();
        assert_eq!(c.endpoint("placement", "publicURL", Some("RegionOne")), Some("http://127.0.0.1:8778"));
        assert_eq!(c.endpoint("placement", "internalURL", None), Some("http://127.0.0.1:8778/internal"));
        // No region: first in catalog order, as keystoneauth.
        assert_eq!(c.endpoint("placement", "public", None), Some("http://10.0.0.2:8778"));
        assert_eq!(c.endpoint("network", "adminURL", Some("RegionOne")), Some("http://127.0.0.1:9696/"));
        assert_eq!(c.endpoint("network", "public", None), None);
        assert_eq!(c.endpoint("placement", "public", Some("RegionThree")), None);
        assert_eq!(c.endpoint("volumev3", "public", None), None);
    }

    /// The token body Keystone 30 returned to the `zun` service user of this project's stack.
    #[test]
    fn endpoints_from_a_real_keystone_token() {
        let body: Value = serde_json::from_str(include_str!("../../tests/fixtures/openstack/keystone-token-zun-service.json")).unwrap();
        let c = Catalog::from_token_body(&body).unwrap();
        assert_eq!(c.endpoint("placement", "publicURL", Some("RegionOne")), Some("http://127.0.0.1:8778"));
        assert_eq!(c.endpoint("network", "internalURL", None), Some("http://127.0.0.1:9696"));
        assert_eq!(c.endpoint("container", "admin", Some("RegionOne")), Some("http://127.0.0.1:9517/v1"));
        assert_eq!(c.endpoint("identity", "public", Some("RegionOne")), Some("http://127.0.0.1:35357/v3/"));
        assert_eq!(c.endpoint("placement", "public", Some("RegionTwo")), None);
    }

    #[test]
    fn interfaces_normalize() {
        assert_eq!(normalize_interface("publicURL"), "public");
        assert_eq!(normalize_interface("internalURL"), "internal");
        assert_eq!(normalize_interface("admin"), "admin");
    }

    fn conf() -> KeystoneAuthSection {
        KeystoneAuthSection {
            auth_url: Some("http://127.0.0.1:35357/v3".into()),
            username: Some("zun".into()),
            password: Some(Secret::new("zunpw")),
            user_domain_name: Some("Default".into()),
            project_name: Some("service".into()),
            project_domain_name: Some("Default".into()),
            ..Default::default()
        }
    }

    #[test]
    fn password_body_with_project_scope() {
        let b = auth_body(&conf()).unwrap();
        assert_eq!(
            b,
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "zun", "domain": {"name": "Default"}, "password": "zunpw"}}},
                   "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}})
        );
    }

    #[test]
    fn password_body_by_ids_and_default_domain() {
        let c = KeystoneAuthSection {
            auth_url: Some("http://k/identity".into()),
            user_id: Some("u1".into()),
            password: Some(Secret::new("p")),
            project_id: Some("p1".into()),
            ..Default::default()
        };
        let b = auth_body(&c).unwrap();
        assert_eq!(b["auth"]["identity"]["password"]["user"], json!({"id": "u1", "password": "p"}));
        assert_eq!(b["auth"]["scope"], json!({"project": {"id": "p1"}}));
        let c = KeystoneAuthSection {
            username: Some("zun".into()),
            default_domain_id: Some("default".into()),
            project_name: Some("service".into()),
            ..conf()
        };
        let c = KeystoneAuthSection { user_domain_name: None, project_domain_name: None, ..c };
        let b = auth_body(&c).unwrap();
        assert_eq!(b["auth"]["identity"]["password"]["user"]["domain"], json!({"id": "default"}));
        assert_eq!(b["auth"]["scope"]["project"]["domain"], json!({"id": "default"}));
    }

    #[test]
    fn application_credential_bodies() {
        let c = KeystoneAuthSection {
            auth_type: "v3applicationcredential".into(),
            auth_url: Some("http://k:5000".into()),
            application_credential_id: Some("ac1".into()),
            application_credential_secret: Some(Secret::new("s3cr3t")),
            ..Default::default()
        };
        assert_eq!(
            auth_body(&c).unwrap(),
            json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "ac1", "secret": "s3cr3t"}}}})
        );
        let c = KeystoneAuthSection {
            application_credential_id: None,
            application_credential_name: Some("mine".into()),
            username: Some("zun".into()),
            user_domain_id: Some("default".into()),
            ..c
        };
        let b = auth_body(&c).unwrap();
        assert_eq!(b["auth"]["identity"]["application_credential"]["user"], json!({"name": "zun", "domain": {"id": "default"}}));
        assert_eq!(b["auth"]["identity"]["application_credential"]["name"], "mine");
    }

    #[test]
    fn bad_configs_are_named() {
        let e = auth_body(&KeystoneAuthSection { password: None, ..conf() }).unwrap_err().to_string();
        assert!(e.contains("password"), "{e}");
        let e = auth_body(&KeystoneAuthSection { auth_type: "token".into(), ..conf() }).unwrap_err().to_string();
        assert!(e.contains("token"), "{e}");
        let e = auth_body(&KeystoneAuthSection { user_domain_name: None, ..conf() }).unwrap_err().to_string();
        assert!(e.contains("user_domain"), "{e}");
        assert!(Session::new(&KeystoneAuthSection { auth_url: None, ..conf() }).is_err());
        assert!(Session::new(&KeystoneAuthSection { auth_url: Some("ftp://x".into()), ..conf() }).is_err());
    }

    #[test]
    fn auth_urls_become_v3() {
        assert_eq!(v3_url("http://127.0.0.1:35357/v3/").unwrap(), "http://127.0.0.1:35357/v3");
        assert_eq!(v3_url("http://k/identity").unwrap(), "http://k/identity/v3");
        assert_eq!(v3_url("http://k:5000/v2.0").unwrap(), "http://k:5000/v3");
    }

    #[test]
    fn renewal_margin() {
        let now = Utc::now();
        let t = Token {
            id: TokenId::new("x"),
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(180),
            user_id: None,
            project_id: None,
            catalog: Arc::new(Catalog::default()),
        };
        // 180 s lifetime: renewed 60 s before expiry.
        assert_eq!(t.renew_at(), now + chrono::Duration::seconds(120));
        assert!(!t.needs_renewal(now + chrono::Duration::seconds(119)));
        assert!(t.needs_renewal(now + chrono::Duration::seconds(120)));
        let long = Token { expires_at: now + chrono::Duration::hours(1), ..t };
        assert_eq!(long.renew_at(), now + chrono::Duration::seconds(3600 - 120));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Session::new(&conf()).unwrap();
        let shown = format!("{s:?} {:?} {:?}", conf(), UserToken::new("usertok", None));
        assert!(!shown.contains("zunpw") && !shown.contains("usertok"), "{shown}");
        assert!(format!("{:?}", TokenId::new("abc")).contains("***"));
    }

    #[test]
    fn user_token_catalog_from_auth_token_info() {
        let info: Value = serde_json::from_str(CATALOG).unwrap();
        let u = UserToken::new("t", Some(&info));
        assert!(u.has_catalog());
        assert!(!UserToken::new("t", Some(&json!({"token": {}}))).has_catalog());
    }

    #[test]
    fn tls_options_are_checked() {
        let s = Session::new(&conf()).unwrap();
        let missing = ClientSection { ca_file: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let e = s.client(Service::Placement, &missing).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        let section = ClientSection { ca_file: Some(empty.path().display().to_string()), ..Default::default() };
        let e = s.client(Service::Placement, &section).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        assert!(s.client(Service::Placement, &ClientSection { insecure: true, ..Default::default() }).is_ok());
        let certs = ClientSection { cert_file: Some("/x.pem".into()), ..Default::default() };
        assert!(s.client(Service::Neutron, &certs).unwrap_err().to_string().contains("not supported"));
        let ks = KeystoneAuthSection { cafile: Some("/nonexistent/ks.pem".into()), ..conf() };
        assert!(Session::new(&ks).unwrap_err().to_string().contains("/nonexistent/ks.pem"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path_segment("abc-123_x"), "abc-123_x");
        assert_eq!(path_segment("a/../b"), "a%2F%2E%2E%2Fb");
    }
}
