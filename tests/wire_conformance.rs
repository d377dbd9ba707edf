//! The worker's RPC server against the real oslo.messaging client and server (the
//! conformance venv) on a real RabbitMQ, each test in a vhost of its own.
mod common;

use common::wire::start_server;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_oslo_client_calls_results_errors_and_unknown_methods() {
    let h = start_server("").await;
    let mut zun = ZunClient::start(&h.conf, true);
    let server = h.host.clone();

    // A call gets its result, JSON types and unicode intact.
    let args = json!({"i": 1, "f": 1.5, "b": true, "n": null, "s": "Zoë ✓ 🚀", "l": [1, "a"], "d": {"k": [1, 2]}});
    let r = zun.cmd_async("call", json!({"server": server, "method": "echo_args", "kwargs": args})).await.unwrap();
    assert_eq!(r, args);

    // A zun exception is rebuilt as its zun.common.exception class, with message and code.
    for (class, code) in [("Conflict", 409), ("Invalid", 400), ("ContainerNotFound", 404)] {
        let e = zun
            .cmd_async("call", json!({"server": server, "method": "raise_error", "kwargs": {"class": class, "message": "nope"}}))
            .await
            .unwrap_err();
        assert_eq!(e["class"], class, "{e}");
        assert_eq!(e["module"], "zun.common.exception", "{e}");
        assert_eq!(e["code"], code, "{e}");
        if class != "ContainerNotFound" {
            assert_eq!(e["message"], "nope", "{e}");
        }
    }

    // Unknown and private methods: oslo's NoSuchMethod, which zun-api sees as a RemoteError.
    for m in ["container_teleport", "_private"] {
        let e = zun.cmd_async("call", json!({"server": server, "method": m})).await.unwrap_err();
        assert_eq!(e["class"], "RemoteError", "{e}");
        assert_eq!(e["exc_type"], "NoSuchMethod", "{e}");
    }

    // The call monitor: heartbeats keep a 2 s monitor alive through a 5 s method.
    let r = zun
        .cmd_async("call", json!({"server": server, "method": "sleep_echo", "kwargs": {"seconds": 5}, "call_monitor_timeout": 2}))
        .await
        .unwrap();
    assert_eq!(r, json!({"slept": 5.0}));
    drop(zun);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcapi_casts_reach_the_handler_with_the_container_intact() {
    let h = start_server("").await;
    let mut zun = ZunClient::start(&h.conf, true);
    let uuid = uuid::Uuid::new_v4().to_string();
    let fields = json!({
        "uuid": uuid, "name": "wire-test", "image": "busybox", "command": ["sleep", "60"],
        "memory": "64", "cpu": 0.5, "environment": {"K": "V"}, "labels": {"app": "x"},
        "status": "Creating", "project_id": "p", "user_id": "u", "image_pull_policy": "ifnotpresent",
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": "3"},
    });
    zun.cmd_async("rpcapi_create", json!({"fields": fields, "host": h.host, "write_db": false, "run": true})).await.unwrap();
    zun.cmd_async("rpcapi_delete", json!({"fields": fields, "host": h.host, "write_db": false, "force": true})).await.unwrap();
    let got = wait_for(Duration::from_secs(15), "both casts", || {
        let got = h.endpoint.received.lock().unwrap().clone();
        async move { (got.len() == 2).then_some(got) }
    })
    .await;
    let (m, args) = &got[0];
    assert_eq!(m, "container_create");
    assert_eq!(args["run"], true);
    let c = zun_compute_rs::oslo::Container::from_value(&args["container"]).unwrap();
    assert_eq!(c.version, "1.44");
    for (k, v) in fields.as_object().unwrap() {
        assert_eq!(c.get(k), Some(v), "field {k}");
    }
    let (m, args) = &got[1];
    assert_eq!(m, "container_delete");
    assert_eq!(args["force"], true);
    let c = zun_compute_rs::oslo::Container::from_value(&args["container"]).unwrap();
    assert_eq!(c.get("status"), Some(&json!("Deleting")));
    assert!(c.changes.contains("status"), "the unsaved status travels in zun_object.changes");
    drop(zun);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_beside_a_real_oslo_server_is_what_oslo_declares() {
    for options in ["", "amqp_durable_queues = true", "rabbit_quorum_queue = true\nrabbit_quorum_delivery_limit = 5"] {
        // oslo alone
        let vh_oslo = Vhost::new("zunrs-topo-oslo");
        let dir = tempfile::tempdir().unwrap();
        let conf = write_conf(
            dir.path(),
            "oslo.conf",
            &format!("[DEFAULT]\ntransport_url = {}\n[oslo_messaging_rabbit]\n{options}\n", vh_oslo.url()),
        );
        let oslo_alone = OsloServer::start(&conf, "node1");
        let expected = normalized(&vh_oslo);
        drop(oslo_alone);

        // ours first, then the real one on the same vhost: no PRECONDITION_FAILED either way.
        let h = start_server(options).await;
        let conf2 = write_conf(
            dir.path(),
            "oslo2.conf",
            &format!("[DEFAULT]\ntransport_url = {}\n[oslo_messaging_rabbit]\n{options}\n", h.vhost.url()),
        );
        let ours_topology = normalized(&h.vhost);
        let real = OsloServer::start(&conf2, &h.host);
        let both = normalized(&h.vhost);
        drop(real);
        let host = h.host.clone();
        h.shutdown().await;
        let rename = |v: &Vec<String>| v.iter().map(|l| l.replace(&host, "node1")).collect::<Vec<_>>();
        assert_eq!(rename(&ours_topology), expected, "options {options:?}: ours alone differs from oslo alone");
        // Both servers: the same shared entities once, and each server's own fanout queue
        // (and its binding): every per-process line twice, nothing else.
        let mut expected_both: Vec<String> = expected
            .iter()
            .flat_map(|l| if l.contains("zun-compute_fanout_") { vec![l.clone(), l.clone()] } else { vec![l.clone()] })
            .collect();
        expected_both.sort();
        assert!(expected_both.len() > expected.len(), "options {options:?}: oslo declared no fanout queue: {expected:?}");
        assert_eq!(rename(&both), expected_both, "options {options:?}: both servers beside each other");
        let fanout_queues = both.iter().filter(|l| l.starts_with("queue zun-compute_fanout_")).count();
        assert_eq!(fanout_queues, 2, "options {options:?}: one fanout queue per server: {both:?}");
    }
}

/// Queues, exchanges and bindings with the random fanout suffix replaced.
fn normalized(v: &Vhost) -> Vec<String> {
    // Every fanout queue name (one per process) becomes zun-compute_fanout_X.
    let re_fanout = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("zun-compute_fanout_") {
            out.push_str(&rest[..i]);
            out.push_str("zun-compute_fanout_");
            let tail = &rest[i + 19..];
            let hex = tail.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(tail.len());
            out.push(if hex > 0 { 'X' } else { ' ' }.to_string().trim().chars().next().unwrap_or('X'));
            rest = &tail[hex..];
        }
        out.push_str(rest);
        out
    };
    // lapin's FieldTable is ordered by key; RabbitMQ compares arguments as a set (no
    // PRECONDITION_FAILED for another order), so compare them as sets too.
    let sort_args = |s: String| -> String {
        match (s.find("[{"), s.rfind("}]")) {
            (Some(a), Some(b)) if b > a => {
                let mut parts: Vec<&str> = s[a + 2..b].split("},{").collect();
                parts.sort();
                format!("{}[{{{}}}]{}", &s[..a], parts.join("},{"), &s[b + 2..])
            }
            _ => s,
        }
    };
    let mut all: Vec<String> = v
        .queues()
        .into_iter()
        .map(|q| format!("queue {}", sort_args(re_fanout(&q))))
        .chain(v.exchanges().into_iter().map(|e| format!("exchange {e}")))
        .chain(v.bindings().into_iter().map(|b| format!("binding {}", re_fanout(&b))))
        .collect();
    all.sort();
    all
}

/// The real oslo.messaging RPC server (tests/conformance/oslo_server.py).
struct OsloServer {
    child: std::process::Child,
}

impl OsloServer {
    fn start(conf: &std::path::Path, host: &str) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(venv().join("bin/python"))
            .arg(repo_path("tests/conformance/oslo_server.py"))
            .arg(conf)
            .arg(host)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("ready"), "oslo server did not start: {line:?}");
        OsloServer { child }
    }
}

impl Drop for OsloServer {
    fn drop(&mut self) {
        // Closing stdin stops it cleanly (it deletes its fanout queue, as on SIGTERM).
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every method zun's rpcapi sends runs here the way zun's compute manager runs it: under
/// the container's lock (our executor) exactly where zun takes `synchronized(container.uuid)`,
/// inline elsewhere. Read from zun 18.0.0's installed source (tests/conformance/rpcapi_modes.py).
#[test]
fn every_rpcapi_method_runs_locked_exactly_where_zun_locks_it() {
    use zun_compute_rs::compute::manager::{method_mode, Mode};
    let out = std::process::Command::new(venv().join("bin/python"))
        .arg(repo_path("tests/conformance/rpcapi_modes.py"))
        .stderr(std::process::Stdio::null())
        .output()
        .expect("python");
    assert!(out.status.success(), "rpcapi_modes.py failed");
    let zun: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert!(zun.len() >= 30, "zun's rpcapi sends only {} methods?", zun.len());
    let mut checked = 0;
    for (method, how) in &zun {
        let ours = method_mode(method).unwrap_or_else(|| panic!("{method}: zun's rpcapi sends it, we have no mode for it"));
        if how["in_manager"] != true {
            // Sent by the rpcapi but absent from zun's compute manager (capsules): zun answers
            // nothing useful; we answer OperationNotSupported either way.
            continue;
        }
        let want = if how["locked"] == true { Mode::Locked } else { Mode::Inline };
        assert_eq!(ours, want, "{method} ({}): zun runs it {want:?}", how["kind"]);
        checked += 1;
    }
    assert!(checked >= 30, "{checked}");
}
