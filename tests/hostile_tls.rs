//! TLS where the operator asked for it (issue 12, defect 15), with a CA made by the test
//! (`openssl`): the worker reaches RabbitMQ through a TLS listener on a test-only port
//! (`socat` in front of the shared broker) and verifies it against `ssl_ca_file`; it
//! never talks to a broker whose certificate does not chain to that CA; and it refuses to
//! start when TLS is asked for and cannot be set up (a CA file that is not there, a
//! database URL asking for TLS from a MariaDB that has none).
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN=zunrs test CA {name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    dir.join(format!("{name}.pem"))
}

/// A server certificate for 127.0.0.1 signed by CA `ca`: (`server.pem`, `server.key`).
fn make_server_cert(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    (dir.join("server.pem"), dir.join("server.key"))
}

/// A process killed when the test ends.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TLS listener on a port of its own, forwarding to the shared RabbitMQ.
fn tls_listener(cert: &Path, key: &Path) -> (u16, Proc) {
    require_tcp(RABBIT_HOST, "RabbitMQ");
    let port = free_port();
    let child = Command::new("socat")
        .arg(format!("OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0", cert.display(), key.display()))
        .arg(format!("TCP:{RABBIT_HOST}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, Proc(child))
}

/// Starts the worker on `conf` (SQLite store), its stderr to `log`.
fn worker(conf: &Path, log: &Path) -> Proc {
    Proc(spawn_worker(conf, log))
}

/// Waits until the log contains `what`, or panics with the log.
fn wait_log(log: &Path, what: &str, w: &mut Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return text;
        }
        if let Ok(Some(status)) = w.0.try_wait() {
            panic!("worker exited with {status} before {what:?}:\n{text}");
        }
        assert!(Instant::now() < deadline, "no {what:?} after 60 s:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the worker to exit; returns its status and log.
fn wait_exit(log: &Path, w: &mut Proc) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = w.0.try_wait() {
            return (status, std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "the worker did not refuse to start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn conf(dir: &Path, transport_url: &str, rabbit: &str, database: &str) -> PathBuf {
    let host = unique("tls-node");
    write_conf(
        dir,
        "zun.conf",
        &format!(
            "[DEFAULT]\nhost = {host}\ntransport_url = {transport_url}\nstate_path = {}\n\
             [oslo_messaging_rabbit]\n{rabbit}\n[database]\n{database}\n[admin]\nlisten =\n",
            dir.display()
        ),
    )
}

#[test]
fn the_broker_is_reached_over_tls_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "ca");
    let (cert, key) = make_server_cert(dir.path(), "ca");
    let (port, _socat) = tls_listener(&cert, &key);
    let vhost = Vhost::new("zunrs-tls");
    // The listener speaks TLS only: consuming through it is a verified TLS session.
    let url = format!("rabbit://guest:guest@127.0.0.1:{port}/{}", vhost.name);
    let c = conf(dir.path(), &url, &format!("ssl = true\nssl_ca_file = {}", ca.display()), "");
    let log = dir.path().join("worker.log");
    let mut w = worker(&c, &log);
    let text = wait_log(&log, "zun-compute-rs consuming", &mut w);
    assert!(text.contains(&format!("amqps://guest@127.0.0.1:{port}")), "{text}");

    // Another CA: the broker's certificate does not chain to it, so the worker never talks.
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = make_ca(other.path(), "other");
    let c = conf(other.path(), &url, &format!("ssl = true\nssl_ca_file = {}", wrong_ca.display()), "");
    let log = other.path().join("worker.log");
    let mut w = worker(&c, &log);
    let text = wait_log(&log, "broker connection failed", &mut w);
    assert!(text.to_lowercase().contains("certificate") || text.contains("UnknownIssuer"), "{text}");
    assert!(!text.contains("zun-compute-rs consuming"), "{text}");
}

#[test]
fn tls_asked_for_and_impossible_refuses_to_start() {
    require_tcp("127.0.0.1:3306", "MariaDB");
    let vhost = Vhost::new("zunrs-tls");
    for (what, transport, rabbit, database, expect) in [
        (
            "a missing ssl_ca_file",
            format!("rabbit://guest:guest@127.0.0.1:5671/{}", vhost.name),
            "ssl = true\nssl_ca_file = /nonexistent/ca.pem",
            "",
            "ssl_ca_file",
        ),
        (
            "a CA file that is no certificate",
            format!("amqps://guest:guest@127.0.0.1:5671/{}", vhost.name),
            "ssl_ca_file = /etc/hostname",
            "",
            "no PEM certificate",
        ),
        (
            "a client key without its certificate",
            format!("amqps://guest:guest@127.0.0.1:5671/{}", vhost.name),
            "ssl_key_file = /etc/hostname",
            "",
            "go together",
        ),
        (
            "a database ssl_ca that is not there",
            vhost.url(),
            "",
            "connection = mysql+pymysql://root@127.0.0.1:3306/zun?ssl_ca=/nonexistent/db-ca.pem",
            "ssl_ca",
        ),
        (
            "database TLS from a MariaDB without TLS",
            vhost.url(),
            "",
            "connection = mysql+pymysql://root@127.0.0.1:3306/zun?ssl=true",
            "TLS",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = conf(dir.path(), &transport, rabbit, database);
        let log = dir.path().join("worker.log");
        let mut w = worker(&c, &log);
        let (status, text) = wait_exit(&log, &mut w);
        assert!(!status.success(), "{what}: exited {status}:\n{text}");
        assert!(text.contains(expect), "{what}: the refusal does not say {expect:?}:\n{text}");
        assert!(!text.contains("zun-compute-rs consuming"), "{what}:\n{text}");
    }
}
