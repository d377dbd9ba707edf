//! The Docker adapter: the only module that touches bollard.
//!
//! [`DockerClient`] wraps a bollard connection with the small set of calls zun-compute's
//! Docker driver makes (see `zun/container/docker/driver.py`), each with a timeout, each
//! returning plain typed results or raw Docker JSON (`serde_json::Value`) where zun works on
//! Docker's dicts (inspect, top, stats, archive stat). Errors are [`DockerError`]s carrying
//! the HTTP status and Docker's message.
//!
//! Version: bollard's models target API 1.53 while the engines zun runs with may be older
//! (this project's test engine is Docker 20.10, API 1.41). [`DockerClient::negotiate_version`]
//! must be called after [`DockerClient::connect`]; fields newer than the engine's API version
//! are ignored by the engine, so the mapping only sets fields that exist in API 1.26+.
//! (bollard 0.21 sends unversioned paths, which the engine reads at its own maximum version.)
//!
//! bollard types do not leak out of this module except [`ContainerCreateBody`] (and the
//! few model types it is built from), re-exported for the pure Container→Docker mapping in
//! `compute::mapping`.

mod error;
mod network;

pub use error::{DockerError, DockerErrorKind};
pub use network::{escape_segment, IpamPool, NetworkSpec, NetworkSummary};

/// The `POST /containers/create` body, built by `compute::mapping`.
pub use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};

use bollard::query_parameters as qp;
use bollard::Docker;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// zun's Docker container name prefix (`consts.NAME_PREFIX`): the one place it is spelled.
pub const NAME_PREFIX: &str = "zun-";

/// The Docker name of zun's container `uuid`: `zun-<uuid>`.
pub fn container_name(uuid: &str) -> String {
    format!("{NAME_PREFIX}{uuid}")
}

/// Where and how to reach the engine (`[docker] api_url` and `[docker] default_timeout`).
#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    /// `unix:///var/run/docker.sock` (default), a bare socket path, `tcp://host:port` or
    /// `http://host:port`. TLS (`https://`) is not supported.
    pub api_url: String,
    /// Applied to every call (for streamed calls: to every wait for the next chunk).
    pub timeout: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings { api_url: "unix:///var/run/docker.sock".into(), timeout: Duration::from_secs(60) }
    }
}

/// How long an idle keep-alive connection to the engine's unix socket stays in the pool.
/// dockerd closes none itself (Go's http.Server with no idle timeout); this only bounds
/// how many descriptors an idle worker holds.
const DOCKER_POOL_IDLE: Duration = Duration::from_secs(30);

/// bollard over the engine's unix socket with **kept-alive connections**, as docker-py's
/// requests session does. bollard's own unix client disables hyper's pool
/// (`pool_max_idle_per_host(0)`), so each call opened, handshook and closed a new socket:
/// ~10 connections per container create, a measurable share of the worker's CPU (see
/// docs/benchmarks.md). The pooled connections are driven by tasks of the runtime that
/// opened them: use a client (and its clones) within one runtime. Same connector (hyperlocal's, socket path hex-encoded in the URI's
/// host as bollard does), same per-call timeout (bollard applies it around the transport).
fn connect_unix_pooled(path: &str, secs: u64, version: &bollard::ClientVersion) -> Result<Docker, bollard::errors::Error> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    if !std::path::Path::new(path).exists() {
        return Err(bollard::errors::Error::SocketNotFoundError(path.to_string()));
    }
    let client =
        std::sync::Arc::new(Client::builder(TokioExecutor::new()).pool_idle_timeout(DOCKER_POOL_IDLE).build(hyperlocal::UnixConnector));
    let transport = move |req: bollard::BollardRequest| {
        let client = client.clone();
        async move { client.request(req).await.map_err(bollard::errors::Error::from) }
    };
    Docker::connect_with_custom_transport(transport, Some(format!("unix://{}", hex::encode(path))), secs, version)
}

/// Registry credentials for a pull (zun's `auth_config`). Never logged.
#[derive(Clone, PartialEq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
    pub server: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server", &self.server)
            .finish()
    }
}

/// What zun-compute reads from `docker info` (`get_host_info`, `_get_host_storage_info`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DockerInfo {
    pub ncpu: i64,
    /// Bytes.
    pub mem_total: i64,
    pub containers: i64,
    pub containers_running: i64,
    pub containers_paused: i64,
    pub containers_stopped: i64,
    pub architecture: String,
    pub os_type: String,
    pub operating_system: String,
    pub kernel_version: String,
    /// Raw daemon labels, `key=value`.
    pub labels: Vec<String>,
    /// Runtime names, sorted (Docker's JSON order). zun uses `['runc']` when absent.
    pub runtimes: Vec<String>,
    pub default_runtime: Option<String>,
    /// Storage driver (`Driver`).
    pub driver: String,
    /// `DriverStatus` pairs.
    pub driver_status: Vec<(String, String)>,
    pub docker_root_dir: String,
    pub server_version: String,
}

impl DockerInfo {
    /// zun's label dict: each `k=v` label split on `=` (first two parts).
    pub fn labels_map(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        for l in &self.labels {
            let mut parts = l.split('=');
            if let (Some(k), Some(v)) = (parts.next(), parts.next()) {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
        m
    }

    fn driver_status_value(&self, key: &str) -> Option<&str> {
        self.driver_status.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `Backing Filesystem` from `DriverStatus`.
    pub fn backing_filesystem(&self) -> Option<&str> {
        self.driver_status_value("Backing Filesystem")
    }

    /// devicemapper's `Base Device Size` in GB (zun: `float(value.strip('GB'))`).
    pub fn base_device_size_gb(&self) -> Option<f64> {
        self.driver_status_value("Base Device Size").and_then(|v| v.trim_matches(|c| c == 'G' || c == 'B').trim().parse().ok())
    }

    /// zun's `check_supported_disk_quota` from the storage driver alone: `Some(true)` for
    /// devicemapper, windowfilter, zfs, btrfs; `Some(false)` for other drivers and for overlay2
    /// not on xfs; `None` for overlay2 on xfs, where the caller must check that
    /// `docker_root_dir` is mounted with `pquota`/`prjquota`.
    pub fn disk_quota_supported(&self) -> Option<bool> {
        match self.driver.as_str() {
            "devicemapper" | "windowfilter" | "zfs" | "btrfs" => Some(true),
            "overlay2" if self.backing_filesystem() == Some("xfs") => None,
            _ => Some(false),
        }
    }
}

/// One entry of `GET /containers/json` (the periodic sync's list form).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerSummary {
    pub id: String,
    /// Names with their leading `/` (e.g. `/zun-<uuid>`).
    pub names: Vec<String>,
    pub image: String,
    /// Lower-case state: `created`, `running`, `paused`, `restarting`, `exited`, `removing`, `dead`.
    pub state: String,
    /// Human status, e.g. `Up 3 minutes`.
    pub status: String,
    pub labels: HashMap<String, String>,
}

impl ContainerSummary {
    /// The zun container uuid from a `/zun-<uuid>` name, if this is a zun container.
    pub fn zun_uuid(&self) -> Option<&str> {
        self.names.first().and_then(|n| n.strip_prefix('/')).and_then(|n| n.strip_prefix(NAME_PREFIX))
    }
}

/// The result of `exec_inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecState {
    pub running: bool,
    /// `None` while the process runs.
    pub exit_code: Option<i64>,
}

/// A connection to one Docker engine. Cheap to clone (shares the HTTP client).
#[derive(Debug, Clone)]
pub struct DockerClient {
    docker: Docker,
    timeout: Duration,
    /// `[docker] api_url`, for the raw calls bollard's model cannot express.
    api_url: String,
}

impl DockerClient {
    /// Builds the client (no IO except checking that a unix socket exists).
    pub fn connect(cfg: &DockerSettings) -> Result<Self, DockerError> {
        let url = cfg.api_url.trim();
        let secs = cfg.timeout.as_secs().max(1);
        let version = bollard::API_DEFAULT_VERSION;
        let docker = if let Some(path) = url.strip_prefix("unix://") {
            connect_unix_pooled(path, secs, version)
        } else if url.starts_with('/') {
            connect_unix_pooled(url, secs, version)
        } else if url.starts_with("tcp://") || url.starts_with("http://") {
            Docker::connect_with_http(url, secs, version)
        } else {
            return Err(DockerError::new(
                DockerErrorKind::Config,
                format!("unsupported [docker] api_url {url:?} (use unix://, tcp:// or http://)"),
                "connect",
            ));
        }
        .map_err(|e| DockerError::from_bollard(e, &format!("connect {url}")))?;
        Ok(DockerClient { docker, timeout: cfg.timeout, api_url: url.to_string() })
    }

    /// Asks the engine for its API version and lowers the client's to it when older.
    /// Returns the version in use, e.g. `1.41`.
    pub async fn negotiate_version(&self) -> Result<String, DockerError> {
        let d = self.docker.clone();
        self.timed("GET /version", d.negotiate_version()).await?;
        Ok(self.api_version())
    }

    /// The API version the client speaks (after negotiation, the engine's when older).
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one bollard call under the client timeout, converting its error.
    async fn timed<T, F>(&self, request: &str, fut: F) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, bollard::errors::Error>>,
    {
        self.timed_for(self.timeout, request, fut).await
    }

    async fn timed_for<T, F>(&self, limit: Duration, request: &str, fut: F) -> Result<T, DockerError>
    where
        F: Future<Output = Result<T, bollard::errors::Error>>,
    {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let err = DockerError::from_bollard(e, request);
                tracing::debug!(request, error = %err, "docker call failed");
                Err(err)
            }
            Err(_) => Err(DockerError::new(DockerErrorKind::Timeout, format!("no answer within {:.1}s", limit.as_secs_f64()), request)),
        }
    }

    // ------------------------------------------------------------------ system

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.timed("GET /_ping", self.docker.ping()).await.map(|_| ())
    }

    /// `GET /info`, reduced to what zun-compute uses.
    pub async fn info(&self) -> Result<DockerInfo, DockerError> {
        let i = self.timed("GET /info", self.docker.info()).await?;
        let mut runtimes: Vec<String> = match &i.runtimes {
            Some(r) => r.keys().cloned().collect(),
            None => vec!["runc".into()],
        };
        runtimes.sort();
        Ok(DockerInfo {
            ncpu: i.ncpu.unwrap_or(0),
            mem_total: i.mem_total.unwrap_or(0),
            containers: i.containers.unwrap_or(0),
            containers_running: i.containers_running.unwrap_or(0),
            containers_paused: i.containers_paused.unwrap_or(0),
            containers_stopped: i.containers_stopped.unwrap_or(0),
            architecture: i.architecture.unwrap_or_default(),
            os_type: i.os_type.unwrap_or_default(),
            operating_system: i.operating_system.unwrap_or_default(),
            kernel_version: i.kernel_version.unwrap_or_default(),
            labels: i.labels.unwrap_or_default(),
            runtimes,
            default_runtime: i.default_runtime,
            driver: i.driver.unwrap_or_default(),
            driver_status: i
                .driver_status
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    let mut it = p.into_iter();
                    Some((it.next()?, it.next().unwrap_or_default()))
                })
                .collect(),
            docker_root_dir: i.docker_root_dir.unwrap_or_default(),
            server_version: i.server_version.unwrap_or_default(),
        })
    }

    // ------------------------------------------------------------------ images

    /// `GET /images/{name}/json`: the image's inspect JSON, `None` when Docker says 404.
    pub async fn image_exists(&self, image: &str) -> Result<Option<Value>, DockerError> {
        let image = &image_segment(image);
        let req = format!("GET /images/{image}/json");
        match self.timed(&req, self.docker.inspect_image(image)).await {
            Ok(i) => Ok(Some(to_value(&i, &req)?)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /images/create?fromImage=repo&tag=tag`, following the progress stream to its
    /// end (the timeout applies to each wait for the next progress message). Returns the
    /// last status line (e.g. `Status: Image is up to date for ...`).
    pub async fn pull(&self, repo: &str, tag: &str, credentials: Option<&RegistryCredentials>) -> Result<String, DockerError> {
        let req = format!("POST /images/create?fromImage={repo}&tag={tag}");
        let opts = qp::CreateImageOptions { from_image: Some(repo.to_string()), tag: Some(tag.to_string()), ..Default::default() };
        let creds = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        let mut stream = Box::pin(self.docker.create_image(Some(opts), None, creds));
        let mut last_status = String::new();
        loop {
            let next = self.timed(&req, async { Ok(stream.next().await) }).await?;
            match next {
                None => break,
                Some(Err(e)) => {
                    let err = DockerError::from_bollard(e, &req);
                    tracing::info!(repo, tag, error = %err, "image pull failed");
                    return Err(err);
                }
                Some(Ok(info)) => {
                    let status = info.status.unwrap_or_default();
                    tracing::debug!(repo, tag, layer = info.id.as_deref().unwrap_or(""), status = status.as_str(), "pull progress");
                    if !status.is_empty() {
                        last_status = status;
                    }
                }
            }
        }
        tracing::info!(repo, tag, status = last_status.as_str(), "image pulled");
        Ok(last_status)
    }

    /// `POST /images/{source}/tag?repo=&tag=`.
    pub async fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let source = &image_segment(source);
        let req = format!("POST /images/{source}/tag?repo={repo}&tag={tag}");
        let opts = qp::TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) };
        self.timed(&req, self.docker.tag_image(source, Some(opts))).await
    }

    /// `POST /images/{repo}/push?tag=`, following the stream to its end.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Result<(), DockerError> {
        let repo = &image_segment(repo);
        let req = format!("POST /images/{repo}/push?tag={tag}");
        let opts = qp::PushImageOptions { tag: Some(tag.into()), ..Default::default() };
        let mut stream = Box::pin(self.docker.push_image(repo, Some(opts), None));
        loop {
            match self.timed(&req, async { Ok(stream.next().await) }).await? {
                None => return Ok(()),
                Some(Err(e)) => return Err(DockerError::from_bollard(e, &req)),
                Some(Ok(_)) => {}
            }
        }
    }

    /// `DELETE /images/{name}` (no force, like docker-py's `remove_image`).
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let image = &image_segment(image);
        let req = format!("DELETE /images/{image}");
        self.timed(&req, self.docker.remove_image(image, None::<qp::RemoveImageOptions>, None)).await.map(|_| ())
    }

    /// `GET /images/search?term=`: Docker's result dicts (`name`, `description`,
    /// `star_count`, `is_official`, `is_automated`).
    pub async fn search_images(&self, term: &str) -> Result<Vec<Value>, DockerError> {
        let req = format!("GET /images/search?term={term}");
        let opts = qp::SearchImagesOptions { term: term.into(), ..Default::default() };
        let items = self.timed(&req, self.docker.search_images(opts)).await?;
        items.iter().map(|i| to_value(i, &req)).collect()
    }

    /// `POST /images/load` (`docker load`) from the tar at `path`, streamed. Returns what
    /// Docker reports as loaded: `repo:tag` references, or `sha256:<id>` for an image
    /// without one. The timeout applies to each wait for Docker's next message.
    pub async fn load_image(&self, path: &std::path::Path) -> Result<Vec<String>, DockerError> {
        let req = "POST /images/load".to_string();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| DockerError::new(DockerErrorKind::Config, format!("cannot open {}: {e}", path.display()), &req))?;
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let opts = qp::ImportImageOptions { quiet: true, ..Default::default() };
        let mut stream = Box::pin(self.docker.import_image_stream(opts, chunks, None));
        let mut loaded = Vec::new();
        loop {
            match self.timed(&req, async { Ok(stream.next().await) }).await? {
                None => break,
                Some(Err(e)) => return Err(DockerError::from_bollard(e, &req)),
                Some(Ok(info)) => {
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        return Err(DockerError::new(DockerErrorKind::Stream, err, &req));
                    }
                    let text = info.stream.or(info.status).unwrap_or_default();
                    for line in text.lines() {
                        if let Some(r) = line.strip_prefix("Loaded image: ").or_else(|| line.strip_prefix("Loaded image ID: ")) {
                            loaded.push(r.trim().to_string());
                        }
                    }
                }
            }
        }
        tracing::info!(path = %path.display(), images = ?loaded, "image tar loaded");
        Ok(loaded)
    }

    /// `GET /images/{name}/get` (`docker save`) into the file `path`, at most `max_bytes`
    /// (the file is removed when the save fails or is larger). Returns its size.
    pub async fn save_image(&self, name: &str, path: &std::path::Path, max_bytes: u64) -> Result<u64, DockerError> {
        use tokio::io::AsyncWriteExt;
        let seg = image_segment(name);
        let req = format!("GET /images/{seg}/get");
        let fail = |detail: String| DockerError::new(DockerErrorKind::Config, detail, &req);
        let res: Result<u64, DockerError> = async {
            let mut file = tokio::fs::File::create(path).await.map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
            let mut stream = Box::pin(self.docker.export_image(&seg));
            let mut total: u64 = 0;
            loop {
                match self.timed(&req, async { Ok(stream.next().await) }).await? {
                    None => break,
                    Some(Err(e)) => return Err(DockerError::from_bollard(e, &req)),
                    Some(Ok(chunk)) => {
                        total = total.saturating_add(chunk.len() as u64);
                        if total > max_bytes {
                            return Err(fail(format!("the image is larger than {max_bytes} bytes")));
                        }
                        file.write_all(&chunk).await.map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
                    }
                }
            }
            file.sync_all().await.map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
            Ok(total)
        }
        .await;
        if res.is_err() {
            let _ = tokio::fs::remove_file(path).await;
        }
        res
    }

    /// `POST /commit?container=&repo=&tag=`: returns the new image id.
    pub async fn commit(&self, container: &str, repo: &str, tag: Option<&str>) -> Result<String, DockerError> {
        let req = format!("POST /commit?container={container}&repo={repo}&tag={}", tag.unwrap_or(""));
        let opts = qp::CommitContainerOptions {
            container: Some(container.into()),
            repo: Some(repo.into()),
            tag: tag.map(str::to_string),
            // Docker's default when the parameter is absent, as docker-py sends it.
            pause: true,
            ..Default::default()
        };
        let config = bollard::models::ContainerConfig::default();
        let r = self.timed(&req, self.docker.commit_container(opts, config)).await?;
        Ok(r.id)
    }

    // ------------------------------------------------------------------ containers

    /// `POST /containers/create?name=`: returns the container id.
    pub async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, DockerError> {
        let req = format!("POST /containers/create?name={name}");
        let opts = qp::CreateContainerOptions { name: Some(name.into()), ..Default::default() };
        let r = self.timed(&req, self.docker.create_container(Some(opts), body)).await?;
        if !r.warnings.is_empty() {
            tracing::warn!(name, warnings = ?r.warnings, "docker create warnings");
        }
        tracing::debug!(name, id = r.id.as_str(), "container created");
        Ok(r.id)
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/start");
        self.timed(&req, self.docker.start_container(id, None::<qp::StartContainerOptions>)).await
    }

    /// `POST /containers/{id}/stop[?t=]`. The call's own timeout is extended by `t`.
    pub async fn stop(&self, id: &str, t: Option<i64>) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/stop");
        let opts = qp::StopContainerOptions { t: t.map(clamp_i32), signal: None };
        let limit = self.timeout + Duration::from_secs(t.unwrap_or(10).max(0) as u64);
        self.timed_for(limit, &req, self.docker.stop_container(id, Some(opts))).await
    }

    /// `POST /containers/{id}/restart[?t=]`.
    pub async fn restart(&self, id: &str, t: Option<i64>) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/restart");
        let opts = qp::RestartContainerOptions { t: t.map(clamp_i32), signal: None };
        let limit = self.timeout + Duration::from_secs(t.unwrap_or(10).max(0) as u64);
        self.timed_for(limit, &req, self.docker.restart_container(id, Some(opts))).await
    }

    /// `POST /containers/{id}/kill[?signal=]` (Docker's default is SIGKILL).
    pub async fn kill(&self, id: &str, signal: Option<String>) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/kill");
        let opts = signal.map(|s| qp::KillContainerOptions { signal: s });
        self.timed(&req, self.docker.kill_container(id, opts)).await
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, id: &str) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/pause");
        self.timed(&req, self.docker.pause_container(id)).await
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, id: &str) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/unpause");
        self.timed(&req, self.docker.unpause_container(id)).await
    }

    /// `DELETE /containers/{id}?v=False&link=False&force=`. A 404 counts as success.
    pub async fn remove(&self, id: &str, force: bool) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("DELETE /containers/{id}?force={force}");
        let opts = qp::RemoveContainerOptions { v: false, link: false, force };
        match self.timed(&req, self.docker.remove_container(id, Some(opts))).await {
            Err(e) if e.is_not_found() => {
                tracing::debug!(id, "container already gone");
                Ok(())
            }
            r => r,
        }
    }

    /// `GET /containers/{id}/json` as Docker's JSON (what zun's `_populate_container` reads).
    pub async fn inspect(&self, id: &str) -> Result<Value, DockerError> {
        let id = &path_segment(id);
        let req = format!("GET /containers/{id}/json");
        let r = self.timed(&req, self.docker.inspect_container(id, None::<qp::InspectContainerOptions>)).await?;
        to_value(&r, &req)
    }

    /// `GET /containers/json?all=1&filters={"name":["zun-"]}`.
    pub async fn list_zun_containers(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let req = "GET /containers/json?all=1&filters={\"name\":[\"zun-\"]}";
        let mut filters = HashMap::new();
        filters.insert("name".to_string(), vec![NAME_PREFIX.to_string()]);
        let opts = qp::ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let list = self.timed(req, self.docker.list_containers(Some(opts))).await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                names: c.names.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
            })
            .collect())
    }

    /// `GET /events` for the state changes of containers named `zun-*`, followed until
    /// Docker closes the stream (it restarted) or fails: `(action, container id, zun uuid)`
    /// with actions `start`, `die`, `pause`, `unpause`, `destroy`, `oom`. `since` (unix
    /// seconds) replays what happened since then, so a resubscription misses nothing. No
    /// timeout between events: the stream can be idle for hours.
    pub fn zun_container_events(
        &self,
        since: Option<i64>,
    ) -> impl futures_util::Stream<Item = Result<(String, String, String), DockerError>> + Send + 'static {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert("event".to_string(), ["start", "die", "pause", "unpause", "destroy", "oom"].iter().map(|s| s.to_string()).collect());
        let opts = qp::EventsOptions { since: since.map(|t| t.to_string()), until: None, filters: Some(filters) };
        self.docker.events(Some(opts)).filter_map(|item| async move {
            match item {
                Err(e) => Some(Err(DockerError::from_bollard(e, "GET /events"))),
                Ok(ev) => {
                    let actor = ev.actor?;
                    let name = actor.attributes.as_ref()?.get("name")?;
                    let uuid = name.strip_prefix(NAME_PREFIX)?.to_string();
                    Some(Ok((ev.action?, actor.id?, uuid)))
                }
            }
        })
    }

    /// `GET /containers/{id}/logs` without following: the demultiplexed output, stdout and
    /// stderr interleaved in order, as docker-py's `logs(stream=False)` returns it.
    /// `tail` is a number of lines or `all` (default); `since` a Unix timestamp.
    pub async fn logs(
        &self,
        id: &str,
        stdout: bool,
        stderr: bool,
        timestamps: bool,
        tail: Option<String>,
        since: Option<i64>,
    ) -> Result<String, DockerError> {
        let id = &path_segment(id);
        let req = format!("GET /containers/{id}/logs");
        let opts = qp::LogsOptions {
            follow: false,
            stdout,
            stderr,
            timestamps,
            tail: tail.unwrap_or_else(|| "all".into()),
            since: since.map(clamp_i32).unwrap_or(0),
            until: 0,
        };
        let stream = self.docker.logs(id, Some(opts));
        let bytes = self.timed(&req, collect_output(stream)).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `POST /containers/{id}/exec` as docker-py sends it (stdout and stderr attached):
    /// returns the exec id.
    pub async fn exec_create(&self, id: &str, cmd: &[String], tty: bool, stdin: bool) -> Result<String, DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/exec");
        let opts = bollard::exec::CreateExecOptions::<String> {
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            cmd: Some(cmd.to_vec()),
            privileged: Some(false),
            user: Some(String::new()),
            ..Default::default()
        };
        let r = self.timed(&req, self.docker.create_exec(id, opts)).await?;
        Ok(r.id)
    }

    /// `POST /exec/{id}/start` (attached, no tty) and collects the output until the process
    /// ends. A [`DockerErrorKind::Timeout`] error after `timeout` (zun's
    /// `[docker] execute_timeout`; the caller reports "Timeout on executing command").
    pub async fn exec_start_collect(&self, exec_id: &str, timeout: Duration) -> Result<String, DockerError> {
        let exec_id = &path_segment(exec_id);
        let req = format!("POST /exec/{exec_id}/start");
        let docker = self.docker.clone();
        let work = async move {
            let opts = bollard::exec::StartExecOptions { detach: false, tty: false, output_capacity: None };
            match docker.start_exec(exec_id, Some(opts)).await? {
                bollard::exec::StartExecResults::Attached { output, input } => {
                    drop(input);
                    collect_output(output).await
                }
                bollard::exec::StartExecResults::Detached => Ok(Vec::new()),
            }
        };
        let bytes = self.timed_for(timeout, &req, work).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState, DockerError> {
        let exec_id = &path_segment(exec_id);
        let req = format!("GET /exec/{exec_id}/json");
        let r = self.timed(&req, self.docker.inspect_exec(exec_id)).await?;
        let running = r.running.unwrap_or(false);
        Ok(ExecState { running, exit_code: if running { None } else { r.exit_code } })
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, height: i64, width: i64) -> Result<(), DockerError> {
        let exec_id = &path_segment(exec_id);
        let req = format!("POST /exec/{exec_id}/resize?h={height}&w={width}");
        let opts = qp::ResizeExecOptions { h: clamp_i32(height), w: clamp_i32(width) };
        self.timed(&req, self.docker.resize_exec(exec_id, opts)).await
    }

    /// `POST /containers/{id}/resize?h=&w=` (TTY size).
    pub async fn resize_tty(&self, id: &str, height: i64, width: i64) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/resize?h={height}&w={width}");
        let opts = qp::ResizeContainerTTYOptions { h: clamp_i32(height), w: clamp_i32(width) };
        self.timed(&req, self.docker.resize_container_tty(id, opts)).await
    }

    /// `GET /containers/{id}/top[?ps_args=]`: `{"Titles": [...], "Processes": [[...]]}`.
    pub async fn top(&self, id: &str, ps_args: Option<&str>) -> Result<Value, DockerError> {
        let id = &path_segment(id);
        let req = format!("GET /containers/{id}/top");
        let opts = ps_args.map(|a| qp::TopOptions { ps_args: a.to_string() });
        let r = self.timed(&req, self.docker.top_processes(id, opts)).await?;
        Ok(json!({
            "Titles": r.titles.unwrap_or_default(),
            "Processes": r.processes.unwrap_or_default(),
        }))
    }

    /// `GET /containers/{id}/stats?stream=0`: one raw sample (see `compute::stats`).
    pub async fn stats_once(&self, id: &str) -> Result<Value, DockerError> {
        let id = &path_segment(id);
        let req = format!("GET /containers/{id}/stats?stream=0");
        let opts = qp::StatsOptions { stream: false, one_shot: false };
        let mut stream = Box::pin(self.docker.stats(id, Some(opts)));
        let first = self.timed(&req, async { stream.next().await.transpose() }).await?;
        match first {
            Some(s) => to_value(&s, &req),
            None => Err(DockerError::new(DockerErrorKind::Decode, "empty stats answer", req)),
        }
    }

    /// `GET /containers/{id}/archive?path=`: the tar bytes and the path stat (the JSON of the
    /// `X-Docker-Container-Path-Stat` header: `name`, `size`, `mode`, `mtime`, `linkTarget`).
    pub async fn get_archive(&self, id: &str, path: &str) -> Result<(Vec<u8>, Value), DockerError> {
        let id = &path_segment(id);
        let head = format!("HEAD /containers/{id}/archive?path={path}");
        let opts = qp::ContainerArchiveInfoOptions { path: path.into() };
        let stat = self.timed(&head, self.docker.get_container_archive_info(id, Some(opts))).await.map_err(|mut e| {
            if e.is_not_found() && e.message.is_empty() {
                // HEAD answers carry no body: give the text Docker's GET would have given.
                e.message = format!("Could not find the file {path} in container {id}");
            }
            e
        })?;
        let stat = json!({
            "name": stat.name,
            "size": stat.size,
            "mode": stat.file_mode,
            "mtime": stat.modification_time,
            "linkTarget": stat.link_target,
        });
        let req = format!("GET /containers/{id}/archive?path={path}");
        let opts = qp::DownloadFromContainerOptions { path: path.into() };
        let mut stream = Box::pin(self.docker.download_from_container(id, Some(opts)));
        let tar = self
            .timed(&req, async {
                let mut out = Vec::new();
                while let Some(chunk) = stream.next().await {
                    out.extend_from_slice(&chunk?);
                }
                Ok(out)
            })
            .await?;
        Ok((tar, stat))
    }

    /// `PUT /containers/{id}/archive?path=` with a tar stream.
    pub async fn put_archive(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("PUT /containers/{id}/archive?path={path}");
        let opts = qp::UploadToContainerOptions { path: path.into(), ..Default::default() };
        self.timed(&req, self.docker.upload_to_container(id, Some(opts), bollard::body_full(tar.into()))).await
    }

    /// `POST /containers/{id}/update`: memory in bytes (`Memory`), `MemorySwap`, `CpuShares`.
    pub async fn update_resources(
        &self,
        id: &str,
        memory: Option<i64>,
        memswap: Option<i64>,
        cpu_shares: Option<i64>,
    ) -> Result<(), DockerError> {
        let id = &path_segment(id);
        let req = format!("POST /containers/{id}/update");
        let body = bollard::models::ContainerUpdateBody { memory, memory_swap: memswap, cpu_shares, ..Default::default() };
        self.timed(&req, self.docker.update_container(id, body)).await
    }
}

/// Concatenates a (demultiplexed) log/exec output stream.
async fn collect_output<S>(stream: S) -> Result<Vec<u8>, bollard::errors::Error>
where
    S: futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>,
{
    let mut stream = Box::pin(stream);
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.extend_from_slice(item?.as_ref());
    }
    Ok(out)
}

fn to_value<T: serde::Serialize>(v: &T, req: &str) -> Result<Value, DockerError> {
    serde_json::to_value(v).map_err(|e| DockerError::new(DockerErrorKind::Decode, e.to_string(), req))
}

/// What Docker may see of a container or exec reference in a URL path: every byte but
/// ASCII letters, digits, `-` and `_` percent-encoded, so `../`, `?`, `&`, `#` or `%` in an
/// id from the wire can never address another endpoint.
const ID_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// An image name in a URL path, as docker-py quotes it (`/` and `:` stay: they are part of
/// `registry:port/repo:tag`); `?`, `&`, `#`, `%` and the rest are percent-encoded.
const IMAGE_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/').remove(b':');

/// A container or exec id as one escaped URL path segment.
pub fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, ID_SEGMENT).to_string()
}

/// An image name escaped for a URL path (see [`IMAGE_SEGMENT`]).
pub fn image_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, IMAGE_SEGMENT).to_string()
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}
