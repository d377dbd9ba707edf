//! A hostile or careless peer on the broker, against the real worker binary (or, where a
//! bug has to be injected, the real Manager in process), real RabbitMQ, MariaDB and
//! Docker. Each test has its own vhost, host, queues and database; queues are observed
//! with rabbitmqctl (ready / unacknowledged), never by sleeping.
//!
//! Issue 12, wire side: a reply that cannot be published (1), a panic inside an
//! executor operation (2), /metrics labels from the wire (4), reply bodies in lapin's
//! log (7), log forging (8), one message taking the worker's memory (10), a redelivery
//! while the first copy runs (11), long operations against the broker's
//! consumer_timeout (16), and what else a hostile peer tries.
mod common;

use common::worker::{TestDb, Worker};
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn envelope(inner: &Value) -> Vec<u8> {
    json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string().into_bytes()
}

fn json_props() -> BasicProperties {
    BasicProperties::default().with_content_type(ShortString::from("application/json")).with_delivery_mode(2)
}

/// (ready, unacknowledged) of one queue.
fn queue_stats(vhost: &str, queue: &str) -> Option<(u64, u64)> {
    let out = rabbitmqctl(&["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"]);
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == queue).then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
    })
}

async fn wait_queue(vhost: &str, queue: &str, what: &str, want: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    wait_for(WAIT, what, || async { queue_stats(vhost, queue).filter(|s| want(*s)) }).await
}

/// A peer on the worker's vhost: publishes raw bodies, owns a reply queue.
struct Peer {
    _conn: Connection,
    ch: Channel,
    reply_q: String,
    replies: Consumer,
    /// Final replies received while waiting for another one.
    early: std::collections::HashMap<String, Value>,
}

impl Peer {
    async fn new(vhost: &str) -> Self {
        Self::on(&format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")).await
    }

    async fn on(uri: &str) -> Self {
        let conn = Connection::connect(uri, ConnectionProperties::default()).await.expect("peer connection");
        let ch = conn.create_channel().await.unwrap();
        let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
        ch.queue_declare(ShortString::from(reply_q.as_str()), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
        let replies = ch
            .basic_consume(
                ShortString::from(reply_q.as_str()),
                ShortString::from("peer"),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Peer { _conn: conn, ch, reply_q, replies, early: Default::default() }
    }

    async fn publish(&self, routing_key: &str, body: &[u8], props: BasicProperties) {
        self.ch
            .basic_publish(ShortString::from("zun"), ShortString::from(routing_key), BasicPublishOptions::default(), body, props)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The final reply to `msg_id` (call-monitor heartbeats skipped).
    async fn reply(&mut self, msg_id: &str) -> Value {
        if let Some(r) = self.early.remove(msg_id) {
            return r;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d =
                tokio::time::timeout(left, self.replies.next()).await.unwrap_or_else(|_| panic!("no reply to {msg_id}")).unwrap().unwrap();
            let outer: Value = serde_json::from_slice(&d.data).unwrap();
            let r: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
            if r["ending"] == true {
                if r["_msg_id"] == msg_id {
                    return r;
                }
                self.early.insert(r["_msg_id"].as_str().unwrap_or_default().to_string(), r);
            }
        }
    }
}

/// A call to a method nobody has, answered with oslo's NoSuchMethod.
fn probe_call(reply_q: &str, msg_id: &str) -> Value {
    json!({"method": "no_such_method", "args": {}, "_msg_id": msg_id, "_reply_q": reply_q,
           "_unique_id": uuid::Uuid::new_v4().simple().to_string(), "_timeout": null})
}

async fn assert_serving(peer: &mut Peer, queue: &str) {
    let id = format!("probe-{}", uuid::Uuid::new_v4().simple());
    peer.publish(queue, &envelope(&probe_call(&peer.reply_q, &id)), json_props()).await;
    let r = peer.reply(&id).await;
    assert!(r["failure"].as_str().is_some_and(|f| f.contains("NoSuchMethod")), "{r}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("admin listener");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn server_queue(w: &Worker) -> String {
    format!("zun-compute.{}", w.host)
}

// ---------------------------------------------------------------------------------------
// 1. A reply that cannot be published must not wedge the queue.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_queue_name_too_long_for_amqp_is_rejected_and_costs_nothing_else() {
    let w = Worker::start("");
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    let long_q = "r".repeat(300);
    for i in 0..5 {
        let mut m = probe_call(&long_q, &format!("long-{i}"));
        m["method"] = json!("container_show");
        peer.publish(&q, &envelope(&m), json_props()).await;
    }
    // Good calls after them are answered, and nothing stays unacknowledged.
    for _ in 0..3 {
        assert_serving(&mut peer, &q).await;
    }
    wait_queue(&w.vhost.name, &q, "the server queue drained, nothing unacknowledged", |s| s == (0, 0)).await;
    let mut w = w;
    assert!(w.alive(), "the worker died");
    let log = w.log_text();
    assert_eq!(log.matches("_reply_q has the wrong type: 300 bytes").count(), 5, "each poison message logged once:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------------
// 2. A panic inside a locked operation (the executor path of the real Manager) is poison:
// answered or dropped, rejected (dead-lettered), never requeued.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_an_executor_operation_of_the_real_manager_is_dead_lettered_once() {
    use zun_compute_rs::admin::{Health, Metrics};
    use zun_compute_rs::compute::{Executor, Manager, Services};
    use zun_compute_rs::config::Settings;
    use zun_compute_rs::docker::{DockerClient, DockerSettings};
    use zun_compute_rs::events::Notifier;
    use zun_compute_rs::store::Store;

    let vhost = Vhost::new("zunrs-hostile");
    vhost.dead_letter_to_zun_dead();
    let peer = Peer::new(&vhost.name).await;
    peer.ch
        .exchange_declare(ShortString::from("zun-dead"), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    peer.ch.queue_declare(ShortString::from("dead"), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    peer.ch
        .queue_bind(
            ShortString::from("dead"),
            ShortString::from("zun-dead"),
            ShortString::from(""),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let db = TestDb::new();
    let host = unique("hostile-node");
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        "zun.conf",
        &format!("[DEFAULT]\nhost = {host}\ntransport_url = {}\n[database]\nconnection = {}\n", vhost.url(), db.url),
    );
    let settings = Arc::new(Settings::load(&[&conf], Vec::new()).unwrap());
    let store = Arc::new(Store::connect(Some(&db.url), &dir.path().join("unused.sqlite")).await.expect("MariaDB store"));
    let docker = Arc::new(DockerClient::connect(&DockerSettings::default()).expect("docker"));
    let metrics = Arc::new(Metrics::new());
    let svc = Arc::new(Services::new(settings.clone(), store, docker, Arc::new(Notifier::disabled(&host)), metrics.clone(), host.clone()));
    let poison_uuid = uuid::Uuid::new_v4().to_string();
    let target = poison_uuid.clone();
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    // The bug: every create of this container panics inside the executor.
    let manager = Manager::new(svc, Executor::new(4, Some(metrics.clone()))).with_fault_hook(Arc::new(move |req| {
        let uuid = req.args.get("container").and_then(|c| c["zun_object.data"]["uuid"].as_str()).unwrap_or_default().to_string();
        if req.method == "container_create" && uuid == target {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("a bug in container_create");
        }
    }));
    let server = common::wire::serve(&settings, Arc::new(manager), metrics.clone()).await;

    let q = format!("zun-compute.{host}");
    let prim = |uuid: &str| {
        json!({"zun_object.name": "Container", "zun_object.namespace": "zun", "zun_object.version": "1.44",
               "zun_object.data": {"uuid": uuid, "name": "hostile", "image": "busybox"}, "zun_object.changes": []})
    };
    let create = json!({"method": "container_create", "args": {"container": prim(&poison_uuid), "limits": {},
        "requested_networks": [], "requested_volumes": {}, "run": true, "pci_requests": null},
        "_unique_id": uuid::Uuid::new_v4().simple().to_string(), "_context_request_id": "req-poison"});
    peer.publish(&q, &envelope(&create), json_props()).await;
    // The same container's queue keeps running after the panic: a delete after it.
    let delete = json!({"method": "container_delete", "args": {"container": prim(&poison_uuid), "force": false},
        "_unique_id": uuid::Uuid::new_v4().simple().to_string()});
    peer.publish(&q, &envelope(&delete), json_props()).await;

    wait_for(WAIT, "the poison create dead-lettered", || async { (vhost.message_count("dead") == Some(1)).then_some(()) }).await;
    wait_queue(&vhost.name, &q, "the server queue drained", |s| s == (0, 0)).await;
    let text = metrics.encode(&Health::default());
    let line = |method: &str, outcome: &str| {
        text.lines()
            .find(|l| l.contains(&format!("method=\"{method}\"")) && l.contains(&format!("outcome=\"{outcome}\"")))
            .map(str::to_string)
    };
    assert!(line("container_create", "rejected").is_some_and(|l| l.ends_with(" 1")), "{text}");
    assert!(line("container_create", "requeued").is_none(), "never requeued:\n{text}");
    assert!(line("container_delete", "acked").is_some_and(|l| l.ends_with(" 1")), "{text}");
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1, "the poison create ran once");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 4. /metrics labels come from a closed set, never from the wire.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_never_come_from_the_wire() {
    let admin = format!("127.0.0.1:{}", free_port());
    let w = Worker::start(&format!("[admin]\nlisten = {admin}\n"));
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    let forged = "x\"} 1\nzun_compute_forged_total{a=\"b\"} 42\n# x";
    peer.publish(&q, &envelope(&json!({"method": forged, "args": {}})), json_props()).await;
    for i in 0..500 {
        let m = json!({"method": format!("random_method_{i}_{}", uuid::Uuid::new_v4().simple()), "args": {}});
        peer.publish(&q, &envelope(&m), json_props()).await;
    }
    assert_serving(&mut peer, &q).await;
    wait_queue(&w.vhost.name, &q, "the server queue drained", |s| s == (0, 0)).await;
    let resp = http_get(&admin, "/metrics");
    assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "{resp}");
    assert!(!resp.contains("forged"), "a label forged a metric line:\n{resp}");
    assert!(!resp.contains("random_method"), "a label from the wire:\n{resp}");
    let unknown = resp
        .lines()
        .find(|l| l.starts_with("zun_compute_rpc_messages_total") && l.contains("method=\"unknown\"") && l.contains("outcome=\"received\""))
        .unwrap_or_else(|| panic!("no unknown-method counter:\n{resp}"));
    assert!(unknown.ends_with(" 502"), "{unknown}");
    assert!(resp.len() < 64 * 1024, "/metrics grew to {} bytes", resp.len());
}

// ---------------------------------------------------------------------------------------
// 7. A reply whose queue is gone: one line per abandoned reply, never its body.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_reply_is_logged_once_without_its_body() {
    let w = Worker::start("[oslo_messaging_rabbit]\nkombu_missing_consumer_retry_timeout = 2\n");
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    let gone = format!("reply_gone_{}", uuid::Uuid::new_v4().simple());
    for i in 0..3 {
        peer.publish(&q, &envelope(&probe_call(&gone, &format!("gone-{i}"))), json_props()).await;
    }
    let abandoned = |log: &str| log.lines().filter(|l| l.contains(" WARN ") && l.contains("reply not delivered")).count();
    wait_for(WAIT, "three abandoned replies logged", || async { (abandoned(&w.log_text()) >= 3).then_some(()) }).await;
    assert_serving(&mut peer, &q).await;
    wait_queue(&w.vhost.name, &q, "the server queue drained", |s| s == (0, 0)).await;
    let log = w.log_text();
    assert_eq!(abandoned(&log), 3, "one line per abandoned reply:\n{log}");
    assert!(!log.contains("returned us a message"), "lapin logged a returned reply body:\n{}", &log[..log.len().min(4000)]);
    assert!(log.len() < 256 * 1024, "the log grew to {} bytes", log.len());
}

// ---------------------------------------------------------------------------------------
// 8. Log forging: every control character from the wire is escaped.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_from_the_wire_never_reach_the_log_raw() {
    let w = Worker::start("");
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    let m = json!({"method": "nope\r\nFORGED-METHOD level=ERROR\u{1b}[2J", "args": {},
        "_context_request_id": "req-1\nFORGED-REQUEST injected\u{0}nul\u{85}nel", "_unique_id": "u\nFORGED-UID"});
    peer.publish(&q, &envelope(&m), json_props()).await;
    // A call with a forged reply queue name too (its reply cannot be delivered).
    let mut c = probe_call("reply\nFORGED-QUEUE", "m\nFORGED-MSGID");
    c["_timeout"] = json!(1);
    peer.publish(&q, &envelope(&c), json_props().with_expiration(ShortString::from("1000"))).await;
    assert_serving(&mut peer, &q).await;
    wait_for(WAIT, "the forged request logged", || async { w.log_text().contains("FORGED-REQUEST").then_some(()) }).await;
    let log = w.log_text();
    for line in log.lines() {
        assert!(!line.trim_start().starts_with("FORGED"), "a forged log line: {line:?}");
        assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "a raw control character: {line:?}");
    }
    assert!(log.contains("req-1\\nFORGED-REQUEST injected\\x00nul\\u{85}nel"), "{log}");
}

// ---------------------------------------------------------------------------------------
// 10. One message cannot take the worker's memory.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_message_is_refused_unparsed_and_memory_comes_back() {
    let w = Worker::start("");
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    assert_serving(&mut peer, &q).await;
    let pid = w.pid().unwrap();
    let (rss0, hwm0) = memory_kib(pid);
    // 25 MB in one string; 3 MB of 1.5 million array elements; a deep nest.
    let big = json!({"method": "container_show", "args": {"blob": "x".repeat(25 << 20)}, "_msg_id": "big", "_reply_q": peer.reply_q});
    peer.publish(&q, &envelope(&big), json_props()).await;
    drop(big);
    let many = format!("[{}1]", "1,".repeat(1_500_000));
    let many = format!(r#"{{"method": "container_show", "args": {{"list": {many}}}, "_msg_id": "many", "_reply_q": "{}"}}"#, peer.reply_q);
    peer.publish(&q, &envelope(&serde_json::from_str::<Value>(&many).unwrap()), json_props()).await;
    drop(many);
    let many_reply = peer.reply("many").await;
    assert!(many_reply["failure"].as_str().is_some_and(|f| f.contains("too large")), "{many_reply}");
    assert_serving(&mut peer, &q).await;
    wait_queue(&w.vhost.name, &q, "the server queue drained", |s| s == (0, 0)).await;
    let (rss1, hwm1) = memory_kib(pid);
    println!("RSS {rss0} KiB -> {rss1} KiB, peak {hwm0} KiB -> {hwm1} KiB");
    assert!(hwm1 - hwm0 < 160 * 1024, "one message cost {} MiB", (hwm1 - hwm0) / 1024);
    assert!(rss1 < rss0 + 48 * 1024, "memory not given back: {rss0} KiB -> {rss1} KiB");
    let log = w.log_text();
    assert!(log.contains("message too large: body of"), "{log}");
}

// ---------------------------------------------------------------------------------------
// What else a hostile peer tries: every message settled, the worker keeps serving.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_variety_is_settled_and_answered_where_possible() {
    let w = Worker::start("");
    let q = server_queue(&w);
    let mut peer = Peer::new(&w.vhost.name).await;
    let call = |id: &str| probe_call(&peer.reply_q, id);
    // Wrong content types: kombu finds no decoder; we still answer the caller.
    for ct in ["text/plain", "application/x-msgpack", "application/json; charset=binary"] {
        let props = BasicProperties::default().with_content_type(ShortString::from(ct));
        peer.publish(&q, &envelope(&call(&format!("ct-{ct}"))), props).await;
    }
    // A header table of 1,000 entries (about 110 KB, near the broker's frame limit).
    let mut headers = FieldTable::default();
    for i in 0..1000 {
        headers.insert(ShortString::from(format!("x-h{i}")), AMQPValue::LongString(LongString::from("y".repeat(100))));
    }
    peer.publish(&q, &envelope(&call("headers")), json_props().with_headers(headers)).await;
    // Nesting deeper than Python's recursion limit.
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let inner = format!(r#"{{"method": "no_such_method", "args": {{"d": {deep}}}, "_msg_id": "deep", "_reply_q": "{}"}}"#, peer.reply_q);
    peer.publish(&q, &json!({"oslo.version": "2.0", "oslo.message": inner}).to_string().into_bytes(), json_props()).await;
    // Absurd _timeout values.
    for (i, t) in [json!(1e308), json!(-5), json!("abc"), json!(0), json!(2)].into_iter().enumerate() {
        let mut m = call(&format!("timeout-{i}"));
        m["_timeout"] = t;
        peer.publish(&q, &envelope(&m), json_props()).await;
    }
    // An unknown namespace.
    let mut m = call("namespace");
    m["namespace"] = json!("baremetal");
    peer.publish(&q, &envelope(&m), json_props()).await;
    // One _unique_id for two different methods: the second is a duplicate (oslo drops it).
    let mut first = call("uid-first");
    first["_unique_id"] = json!("shared-unique-id");
    let mut second = call("uid-second");
    second["_unique_id"] = json!("shared-unique-id");
    second["method"] = json!("container_show");
    peer.publish(&q, &envelope(&first), json_props()).await;
    peer.publish(&q, &envelope(&second), json_props()).await;

    for id in ["ct-text/plain", "ct-application/x-msgpack", "ct-application/json; charset=binary"] {
        let r = peer.reply(id).await;
        assert!(r["failure"].as_str().is_some_and(|f| f.contains("content type")), "{id}: {r}");
    }
    let r = peer.reply("headers").await;
    assert!(r["failure"].as_str().is_some_and(|f| f.contains("NoSuchMethod")), "{r}");
    let r = peer.reply("deep").await;
    assert!(r["failure"].as_str().is_some_and(|f| f.contains("recursion")), "{r}");
    for i in 0..5 {
        let r = peer.reply(&format!("timeout-{i}")).await;
        assert!(r["failure"].as_str().is_some_and(|f| f.contains("NoSuchMethod")), "timeout-{i}: {r}");
    }
    let r = peer.reply("namespace").await;
    assert!(r["failure"].as_str().is_some_and(|f| f.contains("UnsupportedVersion")), "{r}");
    let r = peer.reply("uid-first").await;
    assert!(r["failure"].as_str().is_some_and(|f| f.contains("NoSuchMethod")), "{r}");
    assert_serving(&mut peer, &q).await;
    wait_queue(&w.vhost.name, &q, "the server queue drained", |s| s == (0, 0)).await;
    let mut w = w;
    assert!(w.alive());
    // The copy is dropped, or held until the first one settled and then dropped.
    let log = w.log_text();
    assert!(
        log.contains("dropping duplicate message")
            || log.contains("held copy settled like its first copy unique_id=shared-unique-id settled=Acked"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------
// Containers for the delivery tests: a busybox whose PID 1 ignores SIGTERM, so a stop
// with a timeout takes that long.

fn fields(uuid: &str) -> Value {
    json!({
        "uuid": uuid, "name": format!("hostile-{}", &uuid[..8]), "image": "127.0.0.1:5000/busybox:latest",
        "image_pull_policy": "ifnotpresent", "command": ["sleep", "300"], "memory": "32", "cpu": 0.1,
        "environment": {}, "labels": {"app": "hostile-wire"}, "status": "Creating",
        "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    })
}

async fn row(zun: &mut ZunClient, uuid: &str) -> Value {
    zun.cmd_async("get", json!({"uuid": uuid})).await.expect("get")
}

async fn create_running(zun: &mut ZunClient, host: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&uuid), "host": host, "run": true})).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = row(zun, &uuid).await;
        if r["status"] == "Running" && r["task_state"].is_null() {
            return uuid;
        }
        assert!(Instant::now() < deadline, "never Running: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes the test's Docker containers when dropped, whether the test passed or not.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", &format!("zun-{u}")]).output();
        }
    }
}

/// Closes the worker's consuming connection from the broker's side, as a network cut or
/// a broker-side channel close would: the broker hands its unacknowledged deliveries back.
fn close_listen_connection(vhost: &str) -> usize {
    let out = rabbitmqctl(&["list_connections", "-q", "--no-table-headers", "pid", "vhost", "client_properties"]);
    let mut closed = 0;
    for l in out.lines() {
        let mut f = l.split_whitespace();
        let (Some(pid), Some(vh)) = (f.next(), f.next()) else { continue };
        if vh == vhost && l.contains(":listen") {
            rabbitmqctl(&["close_connection", pid, "test: cut the listening connection"]);
            closed += 1;
        }
    }
    closed
}

// ---------------------------------------------------------------------------------------
// 11. A redelivery while the first copy still runs is held, not acknowledged.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_copy_of_a_running_operation_survives_a_crash() {
    let mut w = Worker::start("");
    let q = server_queue(&w);
    let mut zun = w.zun();
    let uuid = create_running(&mut zun, &w.host).await;
    let _cleanup = Cleanup(vec![uuid.clone()]);
    // A stop that takes 30 s (PID 1 ignores SIGTERM).
    zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_stop", "args": [30], "action": "stop"})).await.unwrap();
    wait_queue(&w.vhost.name, &q, "the stop in hand", |s| s == (0, 1)).await;
    // The broker takes the delivery back and gives it to the reconnected worker, while the
    // first copy still runs.
    assert_eq!(close_listen_connection(&w.vhost.name), 1);
    wait_for(WAIT, "the redelivered copy seen", || async {
        let log = w.log_text();
        (log.contains("held until the first copy settles") || log.contains("dropping duplicate message")).then_some(())
    })
    .await;
    // The worker dies before the stop finishes: the message must still be on the broker.
    w.kill();
    let stats = wait_queue(&w.vhost.name, &q, "the stop back in the queue", |(ready, _)| ready == 1).await;
    assert_eq!(stats, (1, 0));
}

// ---------------------------------------------------------------------------------------
// 16. Long operations against the broker's consumer_timeout. A RabbitMQ node of the
// test's own, configured with a 5 s consumer_timeout (checked every second), so the
// shared broker's configuration is never touched.

struct PrivateBroker {
    node: String,
    port: u16,
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl PrivateBroker {
    fn start(consumer_timeout_ms: u64) -> Self {
        let dir = tempfile::Builder::new().prefix("zunrs-rmq").tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let dist = free_port();
        let node = format!("{}@localhost", unique("zunrs-ct"));
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nconsumer_timeout = {consumer_timeout_ms}\nloopback_users = none\n"),
        )
        .unwrap();
        std::fs::write(d.join("advanced.config"), "[{rabbit, [{channel_tick_interval, 1000}]}].\n").unwrap();
        std::fs::write(d.join("plugins"), "[].\n").unwrap();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(d).status();
        let child = Command::new("rabbitmq-server")
            .current_dir(d)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d.join("feature_flags"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdout(std::fs::File::create(d.join("out")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rabbitmq-server");
        let b = PrivateBroker { node, port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "private RabbitMQ did not start:\n{}",
                std::fs::read_to_string(b.dir.path().join("out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        b
    }

    fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    fn ctl(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", self.node.as_str()];
        a.extend_from_slice(args);
        rabbitmqctl(&a)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-n", &self.node, "shutdown"]).output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_operation_never_makes_the_broker_take_back_other_messages() {
    let broker = PrivateBroker::start(5000);
    let w = Worker::start_on(Some(&broker.url()), "", "[compute]\nconsumer_timeout = 5\n");
    let q = server_queue(&w);
    let mut zun = w.zun();
    let (a, b) = (create_running(&mut zun, &w.host).await, create_running(&mut zun, &w.host).await);
    let _cleanup = Cleanup(vec![a.clone(), b.clone()]);
    // Two slow stops (9 s, past the 5 s consumer_timeout), on two containers.
    for u in [&a, &b] {
        zun.cmd_async("rpcapi", json!({"uuid": u, "method": "container_stop", "args": [9], "action": "stop"})).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (ra, rb) = (row(&mut zun, &a).await, row(&mut zun, &b).await);
        if ra["status"] == "Stopped" && rb["status"] == "Stopped" && ra["task_state"].is_null() && rb["task_state"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "stops never finished: {ra} {rb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = broker.ctl(&["list_queues", "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"]);
    let line = stats.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|f| f.first() == Some(&q.as_str())).unwrap_or_default();
    assert_eq!(line[1..], ["0", "0"], "{stats}");
    let log = w.log_text();
    assert!(!log.contains("lost the broker"), "the broker closed the channel (consumer_timeout):\n{log}");
    assert!(!log.contains("duplicate") && !log.contains("held until"), "a message came back:\n{log}");
    assert!(log.matches("acknowledged before the broker's consumer_timeout").count() >= 2, "{log}");
    drop(zun);
    drop(w);
}
