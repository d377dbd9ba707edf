//! Shared test harness: real services on 127.0.0.1 only (started by `scripts/services.sh`),
//! unique names per test, waits on conditions with deadlines, and the real zun code
//! (the conformance venv) driven through `tests/conformance/zun_client.py`.
#![allow(dead_code)]

pub mod openstack;
pub mod wire;
pub mod worker;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub const RABBIT_HOST: &str = "127.0.0.1:5672";

/// A name nobody else uses: `<prefix>-<8 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Starts the worker binary with `conf`, its log (stderr) appended to `log`.
/// ZUN_RS_WORKER_BIN runs another build of the worker (e.g. to see a regression test fail
/// on an older binary).
pub fn spawn_worker(conf: &Path, log: &Path) -> Child {
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let bin = std::env::var("ZUN_RS_WORKER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_zun-compute-rs").to_string());
    Command::new(bin)
        .arg("--config-file")
        .arg(conf)
        .env("RUST_LOG", "info,zun_compute_rs=debug,lapin=warn")
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("spawn the worker")
}

/// SIGTERM, then wait up to 60 s (SIGKILL after); the exit status.
pub fn terminate(mut child: Child) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails loudly (never skips) when a service the test needs is not there.
pub fn require_tcp(addr: &str, what: &str) {
    let sock: std::net::SocketAddr = addr.parse().expect("address");
    if std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_err() {
        panic!("{what} is not reachable on {addr}: run `bash scripts/services.sh` first");
    }
}

/// Polls `f` until it returns Some, or panics with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl (run scripts/services.sh)");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A RabbitMQ vhost of the test's own, deleted on drop.
pub struct Vhost {
    pub name: String,
}

impl Vhost {
    pub fn new(prefix: &str) -> Self {
        require_tcp(RABBIT_HOST, "RabbitMQ");
        let name = unique(prefix);
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Vhost { name }
    }

    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// An operator's dead-letter policy: the worker's queues (`zun-compute*`) dead-letter
    /// to the exchange `zun-dead`.
    pub fn dead_letter_to_zun_dead(&self) {
        rabbitmqctl(&[
            "set_policy",
            "-p",
            &self.name,
            "--apply-to",
            "queues",
            "zun-dlx",
            "^zun-compute",
            r#"{"dead-letter-exchange":"zun-dead"}"#,
        ]);
    }

    /// `rabbitmqctl list_queues` rows: name, durable, auto_delete, arguments.
    pub fn queues(&self) -> Vec<String> {
        let out =
            rabbitmqctl(&["list_queues", "-p", &self.name, "-q", "--no-table-headers", "name", "durable", "auto_delete", "arguments"]);
        let mut v: Vec<String> =
            out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect();
        v.sort();
        v
    }

    pub fn exchanges(&self) -> Vec<String> {
        let out = rabbitmqctl(&[
            "list_exchanges",
            "-p",
            &self.name,
            "-q",
            "--no-table-headers",
            "name",
            "type",
            "durable",
            "auto_delete",
            "arguments",
        ]);
        let mut v: Vec<String> =
            out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| l.starts_with("zun")).collect();
        v.sort();
        v
    }

    pub fn bindings(&self) -> Vec<String> {
        let out =
            rabbitmqctl(&["list_bindings", "-p", &self.name, "-q", "--no-table-headers", "source_name", "destination_name", "routing_key"]);
        let mut v: Vec<String> =
            out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| l.starts_with("zun")).collect();
        v.sort();
        v
    }

    pub fn message_count(&self, queue: &str) -> Option<u64> {
        let out = rabbitmqctl(&["list_queues", "-p", &self.name, "-q", "--no-table-headers", "name", "messages"]);
        out.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == queue).then(|| it.next()?.parse().ok())?
        })
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

/// The conformance venv (real zun==18.0.0 + oslo.messaging from PyPI).
pub fn venv() -> PathBuf {
    let dir = PathBuf::from(std::env::var("ZUN_RS_VENV").unwrap_or_else(|_| "/var/tmp/zun-rs/venv".into()));
    if !dir.join("bin/python").exists() {
        panic!("conformance venv missing at {}: run `bash scripts/conformance-venv.sh`", dir.display());
    }
    dir
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Writes a zun.conf in `dir` and returns its path.
pub fn write_conf(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write conf");
    p
}

/// The real zun client code, one long-lived process (see tests/conformance/zun_client.py).
pub struct ZunClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ZunClient {
    /// `conf` must set `[DEFAULT] transport_url` (and `[database] connection` unless no_db).
    pub fn start(conf: &Path, no_db: bool) -> Self {
        let py = venv().join("bin/python");
        let mut cmd = Command::new(py);
        cmd.arg(repo_path("tests/conformance/zun_client.py")).arg(conf);
        if no_db {
            cmd.arg("--no-db");
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn zun client");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("zun client start");
        assert!(line.contains("ready"), "zun client did not start: {line:?}");
        ZunClient { child, stdin, stdout }
    }

    /// Sends one command; Ok(result) or Err(error dict).
    pub fn cmd(&mut self, cmd: &str, params: Value) -> Result<Value, Value> {
        let mut req = params;
        req["cmd"] = json!(cmd);
        writeln!(self.stdin, "{req}").expect("write to zun client");
        self.stdin.flush().expect("flush");
        // One JSON object per answer; anything else on stdout is not ours.
        let v: Value = loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read from zun client");
            assert!(n > 0, "the zun client exited");
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.is_object() => break v,
                _ => continue,
            }
        };
        match v.get("ok") {
            Some(ok) if v.get("error").is_none() => Ok(ok.clone()),
            _ => Err(v.get("error").cloned().unwrap_or(v)),
        }
    }

    /// Like `cmd`, run off the async runtime's worker threads.
    pub async fn cmd_async(&mut self, cmd: &str, params: Value) -> Result<Value, Value> {
        tokio::task::block_in_place(|| self.cmd(cmd, params))
    }
}

/// Waits (up to 90 s) until the container's row, read through zun.objects with `params`
/// (`{"uuid": ...}`, plus a request context when a user reads it), satisfies `pred`.
pub async fn wait_row_with(zun: &mut ZunClient, params: Value, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let row = zun.cmd_async("get", params.clone()).await.expect("get");
        if pred(&row) {
            return row;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last row: {row}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`wait_row_with`] as the admin context reads the row.
pub async fn wait_row(zun: &mut ZunClient, uuid: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_row_with(zun, json!({ "uuid": uuid }), what, pred).await
}

/// The container's actions (as zun's `ContainerAction.get_by_container_uuid` lists them,
/// events included) once `pred` holds of them. A status is saved before the event and
/// the action are finished (zun-compute's order too), so a test that waited for the status
/// waits here for the action.
pub async fn wait_actions(zun: &mut ZunClient, uuid: &str, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let actions = zun.cmd_async("actions", json!({ "uuid": uuid })).await.expect("actions");
        let list = actions.as_array().cloned().unwrap_or_default();
        if pred(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last actions: {actions}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A row predicate: this status, and no task in progress.
pub fn settled(status: &'static str) -> impl Fn(&Value) -> bool {
    move |r: &Value| r["status"] == status && r["task_state"].is_null()
}

/// The Docker adapter on the local socket (`scripts/services.sh` starts dockerd).
pub fn docker() -> zun_compute_rs::docker::DockerClient {
    use zun_compute_rs::docker::{DockerClient, DockerSettings};
    DockerClient::connect(&DockerSettings::default()).expect("docker socket (run scripts/services.sh)")
}

/// A Docker adapter on a socket nobody listens on (under `dir`): every call is refused,
/// as when dockerd is down.
pub fn refused_docker(dir: &Path) -> zun_compute_rs::docker::DockerClient {
    use zun_compute_rs::docker::{DockerClient, DockerSettings};
    let sock = dir.join("no-docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    DockerClient::connect(&DockerSettings { api_url: format!("unix://{}", sock.display()), timeout: Duration::from_secs(5) })
        .expect("docker client")
}

impl Drop for ZunClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
