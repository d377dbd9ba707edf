//! What an operator sees: oslo notifications for a create (start, the status
//! transitions, end, in order, parseable), `/metrics` that a Prometheus parser reads and
//! whose counters match the messages sent, and `check-config` that masks secrets.
mod common;

use common::worker::Worker;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{FieldTable, ShortString};
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_is_announced_in_order_and_counted_in_metrics() {
    let port = free_port();
    let w = Worker::start(&format!("[admin]\nlisten = 127.0.0.1:{port}\n"));
    // Subscribe to notifications.info as a ceilometer-style consumer would.
    let conn =
        Connection::connect(&format!("amqp://guest:guest@127.0.0.1:5672/{}", w.vhost.name), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(ShortString::from("zun"), lapin::ExchangeKind::Topic, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(ShortString::from("notifications.info"), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_bind(
        ShortString::from("notifications.info"),
        ShortString::from("zun"),
        ShortString::from("notifications.info"),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut notes = ch
        .basic_consume(
            ShortString::from("notifications.info"),
            ShortString::from("t"),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let mut zun = w.zun();
    let uuid = uuid::Uuid::new_v4().to_string();
    let fields = json!({"uuid": uuid, "name": "obs", "image": "busybox", "image_pull_policy": "ifnotpresent", "command": ["sleep", "300"],
        "memory": "16", "cpu": 0.1, "status": "Creating", "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0", "labels": {"zunrs-test": "1"}});
    zun.cmd_async("rpcapi_create", json!({"fields": fields, "host": w.host, "run": true})).await.unwrap();

    // Collect this container's events until create.end.
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|(t, _)| t == "container.create.end") {
        let d = tokio::time::timeout_at(deadline, notes.next()).await.expect("notifications in time").unwrap().unwrap();
        let outer: Value = serde_json::from_slice(&d.data).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        let msg: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(msg["publisher_id"], format!("zun-compute.{}", w.host));
        assert_eq!(msg["priority"], "INFO");
        assert!(msg["message_id"].is_string() && msg["timestamp"].is_string());
        // The client's token ("tok-secret-do-not-log") never reaches notification consumers.
        assert!(!outer["oslo.message"].as_str().unwrap().contains("tok-secret"), "{msg}");
        if msg["payload"]["uuid"] == uuid.as_str() {
            seen.push((msg["event_type"].as_str().unwrap().to_string(), msg["payload"].clone()));
        }
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types.first(), Some(&"container.create.start"), "{types:?}");
    assert_eq!(types.last(), Some(&"container.create.end"), "{types:?}");
    // The status transitions, in order: task creating → Created → starting → Running.
    let transitions: Vec<(String, String)> = seen
        .iter()
        .filter(|(t, _)| t == "container.status.update")
        .map(|(_, p)| (p["status"].as_str().unwrap_or("").to_string(), p["task_state"].as_str().unwrap_or("-").to_string()))
        .collect();
    let pos = |s: &str, t: &str| transitions.iter().position(|(a, b)| a == s && b == t);
    let creating = pos("Creating", "container_creating").expect("Creating/container_creating announced");
    let created = transitions.iter().position(|(a, _)| a == "Created").expect("Created announced");
    let running = pos("Running", "-").expect("Running announced");
    assert!(creating < created && created < running, "{transitions:?}");

    // /metrics: parses, and counts what was sent.
    for _ in 0..3 {
        zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_show", "args": []})).await.unwrap();
    }
    // The worker acks a call's delivery just after publishing its reply, so the
    // last ack may land a moment after the call returns: wait for it, with a deadline.
    let text = wait_for(Duration::from_secs(20), "three acked container_show in /metrics", || async {
        let text = reqwest_get(port, "/metrics").await;
        (rpc_count(&text, "container_show", "acked") == 3.0).then_some(text)
    })
    .await;
    let count = |method: &str, outcome: &str| rpc_count(&text, method, outcome);
    let scrape = parse_scrape(&text);
    assert_eq!(count("container_show", "received"), 3.0, "{text}");
    assert_eq!(count("container_show", "acked"), 3.0, "{text}");
    assert_eq!(count("container_create", "received"), 1.0, "{text}");
    assert!(scrape.samples.iter().any(|s| s.metric.starts_with("zun_compute_operation_seconds")), "{text}");
    assert!(reqwest_get(port, "/readyz").await.contains("broker_consuming true"));
    assert_eq!(reqwest_get(port, "/healthz").await, "ok\n");

    zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await.unwrap();
    wait_for(Duration::from_secs(60), "delete", || {
        let r = zun.cmd("get", json!({"uuid": uuid}));
        async move { r.ok().filter(Value::is_null).map(|_| ()) }
    })
    .await;
}

fn parse_scrape(text: &str) -> prometheus_parse::Scrape {
    let lines: Vec<Result<String, std::io::Error>> = text.lines().map(|l| Ok(l.to_string())).collect();
    prometheus_parse::Scrape::parse(lines.into_iter()).expect("prometheus text parses")
}

/// The value of `zun_compute_rpc_messages_total{method, outcome}` in a scrape.
fn rpc_count(text: &str, method: &str, outcome: &str) -> f64 {
    parse_scrape(text)
        .samples
        .iter()
        .filter(|s| {
            s.metric == "zun_compute_rpc_messages_total"
                && s.labels.get("method") == Some(method)
                && s.labels.get("outcome") == Some(outcome)
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A tiny HTTP GET on 127.0.0.1 (no HTTP client crate needed for three endpoints).
async fn reqwest_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    // axum answers with a content-length body, or chunked for streamed ones.
    if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn check_config_masks_passwords_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        "zun.conf",
        "[DEFAULT]\nhost = masked\ntransport_url = rabbit://zun:Rabbit-Secret-1@127.0.0.1:1/none\n\
         auth_encryption_key = Encryption-Secret-2\n[database]\nconnection = mysql+pymysql://zun:Db-Secret-3@127.0.0.1:1/zun\n\
         [docker]\ndefault_registry_password = Registry-Secret-4\n[keystone_authtoken]\npassword = Keystone-Secret-5\n[admin]\nlisten =\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zun-compute-rs"))
        .arg("--config-file")
        .arg(&conf)
        .arg("check-config")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for secret in ["Rabbit-Secret-1", "Encryption-Secret-2", "Db-Secret-3", "Registry-Secret-4", "Keystone-Secret-5"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    assert!(text.contains("rabbit://zun:***@127.0.0.1:1/none"), "{text}");
    assert!(text.contains("host = masked"), "{text}");
    // Nothing listens on port 1: the check fails and says which.
    assert!(!out.status.success());
    assert!(text.contains("rabbitmq: FAILED"), "{text}");
}
