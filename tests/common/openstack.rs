//! The real OpenStack test stack (`scripts/openstack.sh`): Keystone, Placement, Neutron,
//! kuryr-libnetwork and one shared zun-api 18.0.0, driven through the real `openstack` CLI
//! (python-openstackclient + python-zunclient + osc-placement) with `-f json`.
//!
//! Isolation: every test runs its own worker under a unique `[DEFAULT] host` on the shared
//! zun database and RabbitMQ vhost of zun-api, and pins its containers to that host with
//! zun's requested destination (`appcontainer run --host`, API 1.39), so zun-api's
//! scheduler asks Placement only for that host's provider. Neutron networks are the
//! test's own (`zunrs-<test>-<random>`). Everything is removed on drop.
//!
//! Locks: a test holds `<state>/openstack/stack.lock` shared while it runs (a test that
//! stops a stack service holds it exclusive), and `/var/tmp/zun-rs/fault.lock` shared, so
//! that the fault tests, which restart RabbitMQ and dockerd, never run beside it.
#![allow(dead_code)]

use super::*;
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const STATE: &str = "/var/tmp/zun-rs";

/// How long a test waits for a create through the stack to settle (Running or Error).
/// kuryr-libnetwork is one Python process that serves every endpoint of every test, and
/// under the whole suite on two cores its CreateEndpoint has taken over a minute
/// (pyroute2 reloading the host's links); the create's Docker start waits for it.
pub const CREATE_WAIT: Duration = Duration::from_secs(240);

/// The `[docker]` section of every stack worker: zun's 60 s Docker client timeout
/// (`[docker] default_timeout`) is shorter than a start that waits on a loaded kuryr (see
/// [`CREATE_WAIT`]), and a test here is never about that timeout.
pub const STACK_DOCKER: &str = "[docker]\ndefault_timeout = 180\n";

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var("ZUN_RS_STATE").unwrap_or_else(|_| STATE.into()))
}

/// Polls `f` until it returns Some, or panics with `what` (and the last value seen by
/// `f`, which it may record in `last`) at the deadline. Blocking: these tests are sync.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1000));
    }
}

// ------------------------------------------------------------------ locks

fn flock(path: &std::path::Path, arg: FlockArg) -> Flock<std::fs::File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("lock dir");
    }
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).expect("lock file");
    Flock::lock(f, arg).map_err(|(_, e)| e).expect("flock")
}

/// Held while a test uses the stack. Always taken in the same order (fault.lock, then
/// stack.lock), so shared and exclusive holders cannot deadlock.
///
/// flock favours readers: while stack tests keep overlapping, a test that wants the lock
/// exclusive could wait for ever. Everyone therefore passes a turnstile
/// (`stack.turn`, held exclusive only while taking stack.lock): a waiting exclusive taker
/// holds the turnstile, so new shared takers queue behind it instead of overtaking it.
pub struct StackLock {
    _stack: Flock<std::fs::File>,
    _fault: Flock<std::fs::File>,
}

impl StackLock {
    /// Other stack tests may run beside this one; nobody stops a stack service meanwhile.
    pub fn shared() -> Self {
        eprintln!("[stack] taking the stack lock (shared)");
        Self::take(FlockArg::LockShared)
    }

    /// For a test that stops a stack service: no other stack test runs meanwhile.
    pub fn exclusive() -> Self {
        eprintln!("[stack] taking the stack lock (exclusive)");
        Self::take(FlockArg::LockExclusive)
    }

    fn take(mode: FlockArg) -> Self {
        let fault = flock(&state_dir().join("fault.lock"), FlockArg::LockShared);
        let turnstile = flock(&state_dir().join("openstack/stack.turn"), FlockArg::LockExclusive);
        let stack = flock(&state_dir().join("openstack/stack.lock"), mode);
        drop(turnstile);
        StackLock { _stack: stack, _fault: fault }
    }
}

// ------------------------------------------------------------------ the stack

/// The running stack and its env file (`scripts/openstack.sh env`).
pub struct Stack {
    pub env: HashMap<String, String>,
}

static UP: OnceLock<Result<HashMap<String, String>, String>> = OnceLock::new();

fn openstack_sh(args: &[&str]) -> std::process::Output {
    Command::new("bash").arg(repo_path("scripts/openstack.sh")).args(args).output().expect("run scripts/openstack.sh")
}

/// Parses `export A=x B=y` lines (the env file never quotes: its values have no spaces).
fn parse_env(text: &str) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("export ") else {
            continue;
        };
        for word in rest.split_whitespace() {
            if let Some((k, v)) = word.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    env
}

impl Stack {
    /// Brings the stack up once per test process (`openstack.sh up`: ~0.2 s when it runs
    /// already) and reads the env file. Fails loudly, with the script's output.
    pub fn up() -> Stack {
        let env = UP
            .get_or_init(|| {
                require_tcp("127.0.0.1:3306", "MariaDB");
                require_tcp(RABBIT_HOST, "RabbitMQ");
                let out = openstack_sh(&["up"]);
                if !out.status.success() {
                    return Err(format!(
                        "`bash scripts/openstack.sh up` failed:\n{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                let out = openstack_sh(&["env"]);
                Ok(parse_env(&String::from_utf8_lossy(&out.stdout)))
            })
            .clone()
            .unwrap_or_else(|e| panic!("{e}"));
        Stack { env }
    }

    pub fn var(&self, key: &str) -> String {
        self.env.get(key).cloned().unwrap_or_else(|| panic!("{key} missing from the stack's env file"))
    }

    /// Stops then starts again one service (keystone, placement, neutron, kuryr, zun-api).
    /// Hold [`StackLock::exclusive`] around it.
    pub fn stop_service(&self, svc: &str) {
        let out = openstack_sh(&["stop", svc]);
        assert!(out.status.success(), "openstack.sh stop {svc}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn start_service(&self, svc: &str) {
        let out = openstack_sh(&["up", svc]);
        assert!(
            out.status.success(),
            "openstack.sh up {svc}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the real `openstack` CLI with the admin credentials of the env file.
    /// Ok(stdout) or Err(stdout + stderr). Killed after 120 s.
    pub fn os(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(self.var("ZUNRS_OS_OPENSTACK_CLI"));
        for (k, _) in std::env::vars() {
            if k.starts_with("OS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().filter(|(k, _)| k.starts_with("OS_")));
        let mut child =
            cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the openstack CLI");
        let (out, err) = drain(&mut child, Duration::from_secs(120));
        let status = child.wait().expect("wait for the CLI");
        if status.success() {
            Ok(out)
        } else {
            Err(format!("`openstack {}` -> {status}\n{out}{err}", args.join(" ")))
        }
    }

    /// `openstack ARGS -f json`, parsed; panics with the CLI's output on failure.
    pub fn os_json(&self, args: &[&str]) -> Value {
        self.try_os_json(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_os_json(&self, args: &[&str]) -> Result<Value, String> {
        let mut a = args.to_vec();
        if a.len() >= 2 && a[0] == "appcontainer" && (a[1] == "run" || a[1] == "create") {
            // everything after the image is the container's command
            a.splice(2..2, ["-f", "json"]);
        } else {
            a.extend(["-f", "json"]);
        }
        let out = self.os(&a)?;
        serde_json::from_str(&out).map_err(|e| format!("`openstack {}` printed no JSON ({e}): {out}", a.join(" ")))
    }

    /// `openstack ARGS`, panicking with the CLI's output on failure.
    pub fn os_ok(&self, args: &[&str]) -> String {
        self.os(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A SQL query on zun's database (the one zun-api and the workers share), as text rows.
    pub fn sql(&self, query: &str) -> Vec<Vec<String>> {
        let out = Command::new("mariadb")
            .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "-N", "-B", "-e", query, &self.var("ZUNRS_OS_DB_NAME")])
            .output()
            .expect("mariadb client");
        assert!(out.status.success(), "SQL {query}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
    }

    /// A new admin token (`openstack token issue`).
    pub fn issue_token(&self) -> String {
        self.os_json(&["token", "issue"])["id"].as_str().expect("token id").to_string()
    }

    /// Whether Keystone still accepts `token` (it validates itself: GET /v3/auth/tokens).
    pub fn token_valid(&self, token: &str) -> bool {
        let out = Command::new("curl")
            .args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", &format!("X-Auth-Token: {token}"), "-H", &format!("X-Subject-Token: {token}")])
            .arg(format!("{}/auth/tokens", self.var("OS_AUTH_URL")))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).trim() == "200"
    }

    /// The Placement resource provider named `host`, if any: its uuid.
    pub fn provider_uuid(&self, host: &str) -> Option<String> {
        let v = self.os_json(&["resource", "provider", "list", "--name", host]);
        v.as_array()?.first()?.get("uuid")?.as_str().map(str::to_string)
    }

    /// The consumers holding allocations against provider `rp`.
    pub fn provider_consumers(&self, rp: &str) -> Vec<String> {
        let v = self.os_json(&["resource", "provider", "show", "--allocations", rp]);
        v.get("allocations").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Neutron ports whose device_id is `device` (zun: the container uuid).
    pub fn ports_of(&self, device: &str) -> Vec<Value> {
        self.os_json(&["port", "list", "--device-id", device, "--long"]).as_array().cloned().unwrap_or_default()
    }
}

fn drain(child: &mut Child, timeout: Duration) -> (String, String) {
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (t_out.join().unwrap_or_default(), t_err.join().unwrap_or_default())
}

// ------------------------------------------------------------------ neutron networks

/// A Neutron network with one IPv4 subnet, the test's own; removed on drop (its ports,
/// kuryr's Docker network named after it, the subnet, the network).
pub struct Network<'a> {
    stack: &'a Stack,
    pub name: String,
    pub id: String,
    pub subnet_id: String,
    pub cidr: String,
}

impl<'a> Network<'a> {
    pub fn create(stack: &'a Stack, test: &str) -> Self {
        let name = unique(&format!("zunrs-{test}"));
        // a /24 of 10.64.0.0/10 nobody else is likely to use at the same time
        let r: u32 = rand_u32() % (64 * 256);
        let cidr = format!("10.{}.{}.0/24", 64 + r / 256, r % 256);
        let net = stack.os_json(&["network", "create", &name]);
        let id = net["id"].as_str().expect("network id").to_string();
        let sub = stack.os_json(&["subnet", "create", "--network", &id, "--subnet-range", &cidr, &name]);
        let subnet_id = sub["id"].as_str().expect("subnet id").to_string();
        Network { stack, name, id, subnet_id, cidr }
    }

    /// Ports on this network.
    pub fn ports(&self) -> Vec<Value> {
        self.stack.os_json(&["port", "list", "--network", &self.id, "--long"]).as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Network<'_> {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.id]).output();
        if let Ok(out) = self.stack.os(&["port", "list", "--network", &self.id, "-f", "value", "-c", "ID"]) {
            for port in out.split_whitespace() {
                let _ = self.stack.os(&["port", "delete", port]);
            }
        }
        let _ = self.stack.os(&["subnet", "delete", &self.subnet_id]);
        if let Err(e) = self.stack.os(&["network", "delete", &self.id]) {
            eprintln!("cleanup: network {} not deleted: {e}", self.id);
        }
    }
}

fn rand_u32() -> u32 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

// ------------------------------------------------------------------ the worker

/// zun-compute-rs configured for the stack: zun-api's database and vhost, keystone auth,
/// Placement and Neutron clients, kuryr networking, a unique host. On drop: containers
/// left on its host are force-deleted through zun-api, the worker stops, and its rows
/// (container, zun_service, compute_node) and Placement provider are removed.
pub struct StackWorker<'a> {
    stack: &'a Stack,
    child: Option<Child>,
    pub host: String,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
    starts: usize,
}

impl<'a> StackWorker<'a> {
    /// Starts the worker (`extra` is appended to its zun.conf) and waits until zun-api
    /// can schedule to it: the host is listed by `appcontainer host list` and its
    /// Placement provider exists.
    pub fn start(stack: &'a Stack, test: &str, extra: &str) -> Self {
        Self::start_with(stack, test, "", extra)
    }

    /// Like [`StackWorker::start`], with `default_extra` lines added to its `[DEFAULT]`
    /// section (a second `[DEFAULT]` in `extra` would replace the first one), e.g. an
    /// availability zone of its own that a capsule template can name.
    pub fn start_with(stack: &'a Stack, test: &str, default_extra: &str, extra: &str) -> Self {
        let host = unique(&format!("zunrs-os-{test}"));
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[DEFAULT]\nhost = {host}\ntransport_url = {transport}\nstate_path = {state}\nperiodic_interval_max = 10\n\
             rpc_response_timeout = 60\n{default_extra}\n\
             [database]\nconnection = {db}\n\
             [admin]\nlisten =\n\
             [keystone_auth]\nauth_type = password\nauth_url = {kurl}\nusername = zun\npassword = zun\nproject_name = service\n\
             user_domain_name = Default\nproject_domain_name = Default\n\
             [placement_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n\
             [neutron_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n\
             [network]\ndriver = kuryr\n{STACK_DOCKER}{extra}\n",
            transport = stack.var("ZUNRS_OS_TRANSPORT_URL"),
            state = dir.path().display(),
            db = stack.var("ZUNRS_OS_DB_URL"),
            kurl = stack.var("OS_AUTH_URL"),
        );
        let conf = write_conf(dir.path(), "zun.conf", &text);
        let log = dir.path().join("worker.log");
        let mut w = StackWorker { stack, child: None, host, conf, log, dir, starts: 0 };
        eprintln!("[stack] starting worker {}", w.host);
        w.spawn();
        eprintln!("[stack] worker {} consuming; waiting for zun-api and Placement to know it", w.host);
        w.wait_schedulable(Duration::from_secs(90));
        w
    }

    /// (Re)starts the process and waits for it to consume.
    pub fn spawn(&mut self) {
        let child = spawn_worker(&self.conf, &self.log);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            if text.matches("zun-compute-rs consuming").count() > self.starts {
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("worker exited with {status} before consuming:\n{text}");
            }
            assert!(Instant::now() < deadline, "worker not consuming after 60 s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.starts += 1;
    }

    /// Waits until zun-api lists this host and Placement has its provider.
    pub fn wait_schedulable(&self, timeout: Duration) -> String {
        poll(timeout, &format!("host {} in zun-api and its Placement provider", self.host), || {
            let hosts = self.stack.try_os_json(&["appcontainer", "host", "list"]).ok()?;
            hosts.as_array()?.iter().find(|h| h["hostname"] == self.host.as_str())?;
            self.stack.provider_uuid(&self.host)
        })
    }

    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.thaw();
        terminate(self.child.take()?)
    }

    /// SIGSTOP: the process keeps its connections (zun_service stays up, its queue
    /// stays bound) but handles nothing until [`StackWorker::thaw`].
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-STOP").arg(c.id().to_string()).status();
        }
    }

    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-CONT").arg(c.id().to_string()).status();
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    // -------------------------------------------------------------- containers

    /// `openstack appcontainer run --host <this host> --net network=<net> ARGS...`; the uuid.
    pub fn run(&self, net: &Network, name: &str, args: &[&str]) -> String {
        let net_arg = format!("network={}", net.id);
        let mut a = vec!["appcontainer", "run", "--host", &self.host, "--net", &net_arg, "--name", name];
        a.extend_from_slice(args);
        let v = self.stack.os_json(&a);
        v["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {v}")).to_string()
    }

    /// `appcontainer show`, as JSON.
    pub fn show(&self, uuid: &str) -> Value {
        self.stack.os_json(&["appcontainer", "show", uuid])
    }

    /// Waits until the container's status is `status`; returns the `show` output. Panics
    /// early (with the status_reason) when it ends in another final state.
    pub fn wait_status(&self, uuid: &str, status: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(v) = self.stack.try_os_json(&["appcontainer", "show", uuid]) {
                if v["status"] == status {
                    return v;
                }
                if v["status"] == "Error" && status != "Error" {
                    panic!(
                        "container {uuid} is Error (wanted {status}): {}\n--- worker log tail:\n{}",
                        v["status_reason"],
                        self.log_tail(40)
                    );
                }
                last = v;
            }
            assert!(
                Instant::now() < deadline,
                "container {uuid} not {status} after {timeout:?}; last show: {last}\n--- worker log tail:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until `show` fails with "not found" (the row is gone).
    pub fn wait_gone(&self, uuid: &str, timeout: Duration) {
        poll(timeout, &format!("container {uuid} deleted"), || match self.stack.os(&["appcontainer", "show", uuid]) {
            Err(e) if e.contains("not found") || e.contains("Not Found") || e.contains("404") => Some(()),
            _ => None,
        })
    }

    /// Runs a command in the container (`appcontainer exec`), returning its output.
    pub fn exec(&self, uuid: &str, cmd: &[&str]) -> String {
        let mut a = vec!["appcontainer", "exec", uuid];
        a.extend_from_slice(cmd);
        self.stack.os_ok(&a)
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn cleanup(&mut self) {
        let host = self.host.clone();
        let rows = self.stack.sql(&format!("SELECT uuid FROM container WHERE host = '{host}'"));
        for row in &rows {
            if let Some(uuid) = row.first() {
                let _ = self.stack.os(&["appcontainer", "delete", "--force", uuid]);
            }
        }
        for row in &rows {
            if let Some(uuid) = row.first() {
                let _ = poll_quiet(Duration::from_secs(30), || self.stack.os(&["appcontainer", "show", uuid]).is_err());
                let _ = Command::new("docker").args(["rm", "-f", &format!("zun-{uuid}")]).output();
            }
        }
        self.stop();
        self.stack.sql(&format!("DELETE FROM container WHERE host = '{host}'"));
        self.stack.sql(&format!("DELETE FROM zun_service WHERE host = '{host}'"));
        self.stack.sql(&format!("DELETE FROM compute_node WHERE hostname = '{host}'"));
        if let Ok(v) = self.stack.try_os_json(&["resource", "provider", "list", "--name", &host]) {
            for rp in v.as_array().into_iter().flatten() {
                let Some(rp) = rp["uuid"].as_str() else { continue };
                for consumer in self.stack.provider_consumers(rp) {
                    let _ = self.stack.os(&["resource", "provider", "allocation", "delete", &consumer]);
                }
                if let Err(e) = self.stack.os(&["resource", "provider", "delete", rp]) {
                    eprintln!("cleanup: provider {rp} of {host} not deleted: {e}");
                }
            }
        }
    }
}

fn poll_quiet(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

impl Drop for StackWorker<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- worker {} log (last 80 lines) ----\n{}", self.host, self.log_tail(80));
        }
        self.cleanup();
    }
}

/// Brings up only `services` (e.g. keystone and placement: what the Placement and Keystone
/// tests need) and returns the env file, without waiting for the rest of the stack.
pub fn up_only(services: &[&str]) -> HashMap<String, String> {
    let mut args = vec!["up"];
    args.extend_from_slice(services);
    let out = openstack_sh(&args);
    assert!(
        out.status.success(),
        "openstack.sh {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let env = parse_env(&String::from_utf8_lossy(&openstack_sh(&["env"]).stdout));
    assert!(env.contains_key("OS_AUTH_URL"), "no OS_AUTH_URL in the stack's env: {env:?}");
    env
}
