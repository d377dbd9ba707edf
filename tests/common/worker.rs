//! The real worker binary against real services: a MariaDB database of its own with
//! zun's schema (built by `scripts/zun-db.sh`), a vhost of its own, a zun.conf, and the
//! process stopped with SIGTERM on drop. Its log goes to a file, printed when a test fails.
use super::*;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A MariaDB database with zun's real schema, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        require_tcp("127.0.0.1:3306", "MariaDB");
        let name = format!("zunrs_e_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let out = Command::new("bash").arg(repo_path("scripts/zun-db.sh")).arg("--fast").arg(&name).output().expect("zun-db.sh");
        assert!(out.status.success(), "zun-db.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        assert!(url.starts_with("mysql"), "no URL from zun-db.sh: {url:?}");
        TestDb { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_path("scripts/zun-db.sh")).arg("--drop").arg(&self.name).output();
    }
}

pub struct Worker {
    child: Option<Child>,
    pub host: String,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub vhost: Vhost,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    /// How many times the process reached "consuming".
    starts: std::cell::Cell<usize>,
}

impl Worker {
    /// Starts the worker with `extra` appended to its zun.conf; waits until it consumes.
    pub fn start(extra: &str) -> Self {
        Self::start_with("", extra)
    }

    /// Like [`Worker::start`], with `default_extra` lines added to its `[DEFAULT]` section
    /// (which `extra`, appended after the other sections, cannot reach). When `extra` has
    /// an `[admin]` section, it replaces the default one (admin listener off).
    pub fn start_with(default_extra: &str, extra: &str) -> Self {
        Self::start_on(None, default_extra, extra)
    }

    /// Like [`Worker::start_with`], on the broker at `transport_url` when given (its
    /// own RabbitMQ node, say) instead of a vhost of the shared one.
    pub fn start_on(transport_url: Option<&str>, default_extra: &str, extra: &str) -> Self {
        let vhost = Vhost::new("zunrs-e2e");
        let db = TestDb::new();
        let dir = tempfile::tempdir().unwrap();
        let host = unique("e2e-node");
        let text = format!(
            "[DEFAULT]\nhost = {host}\ntransport_url = {}\nrpc_response_timeout = 60\nstate_path = {}\n{}\n\
             [database]\nconnection = {}\n{}{extra}\n",
            transport_url.map(str::to_string).unwrap_or_else(|| vhost.url()),
            dir.path().display(),
            if default_extra.contains("periodic_interval_max") {
                default_extra.to_string()
            } else {
                format!("periodic_interval_max = 60\n{default_extra}")
            },
            db.url,
            if extra.contains("[admin]") { "" } else { "[admin]\nlisten =\n" },
        );
        let conf = write_conf(dir.path(), "zun.conf", &text);
        let log = dir.path().join("worker.log");
        let mut w = Worker { child: None, host, conf, log, vhost, db, dir, starts: std::cell::Cell::new(0) };
        w.spawn();
        w
    }

    /// (Re)starts the process and waits for it to consume.
    pub fn spawn(&mut self) {
        let child = spawn_worker(&self.conf, &self.log);
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.matches("zun-compute-rs consuming").count() > self.starts_seen() {
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("worker exited with {status} before consuming:\n{text}");
            }
            assert!(Instant::now() < deadline, "worker not consuming after 60 s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.starts.set(self.starts.get() + 1);
    }

    fn starts_seen(&self) -> usize {
        self.starts.get()
    }

    /// SIGTERM, then wait; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        terminate(self.child.take()?)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The real zun client on this worker's broker and database.
    pub fn zun(&self) -> ZunClient {
        ZunClient::start(&self.conf, false)
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            eprintln!("---- worker log (last 80 lines) ----");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}
