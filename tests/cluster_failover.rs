//! Broker-node loss on a real 3-node RabbitMQ cluster (`scripts/rabbit-cluster.sh`,
//! ports 5791-5793): the worker's `transport_url` lists the three nodes.
//!
//! Each test uses a vhost of its own on the cluster. A test that kills a node holds the
//! cluster lock (`$ZUN_RS_STATE/rabbit-cluster/tests.lock`) exclusively; the others hold
//! it shared, so no test sees a node vanish that it did not kill.
mod common;

use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const STATE: &str = "/var/tmp/zun-rs";
const CREATES: usize = 100;

fn state_dir() -> String {
    std::env::var("ZUN_RS_STATE").unwrap_or_else(|_| STATE.to_string())
}

/// Runs `scripts/rabbit-cluster.sh`. A `ctl` (rabbitmqctl) or an `up` (idempotent) is tried
/// again until it works or its deadline has passed: the CLI's own Erlang VM was seen to
/// crash at its start ("no logger present ... code_server") against a node that `up` had
/// just restarted, and to take most of a minute to start when the whole suite starts
/// at once on two cores, so that `up`'s membership check ran out of time with every
/// node already clustered. A `ctl` was also seen to run into the script's 60 s `timeout`
/// twice in a row in that minute (a `set_permissions` right after its `add_vhost`
/// worked), so both get the same 300 s.
fn cluster(args: &[&str]) -> String {
    let retried = matches!(args.first(), Some(&"ctl") | Some(&"up"));
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("bash").arg(repo_path("scripts/rabbit-cluster.sh")).args(args).output().expect("rabbit-cluster.sh");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !retried || Instant::now() >= deadline {
            panic!("rabbit-cluster.sh {args:?} ({}; 124 is the script's timeout): {err}", out.status);
        }
        eprintln!("rabbit-cluster.sh {args:?} failed ({}); trying again: {}", out.status, err.lines().next().unwrap_or_default());
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct ClusterLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

fn cluster_lock(exclusive: bool) -> ClusterLock {
    let dir = format!("{}/rabbit-cluster", state_dir());
    std::fs::create_dir_all(&dir).expect("state dir");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(format!("{dir}/tests.lock")).expect("lock file");
    let how = if exclusive { nix::fcntl::FlockArg::LockExclusive } else { nix::fcntl::FlockArg::LockShared };
    let lock = nix::fcntl::Flock::lock(f, how).map_err(|(_, e)| e).expect("flock");
    // Whatever an earlier test left behind (a killed node), the cluster is whole again.
    cluster(&["up"]);
    ClusterLock(lock)
}

/// A vhost of the test's own on the cluster, deleted on drop.
struct ClusterVhost(String);

impl ClusterVhost {
    fn new() -> Self {
        let name = unique("zunrs-cl");
        cluster(&["ctl", "1", "add_vhost", &name]);
        cluster(&["ctl", "1", "set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        ClusterVhost(name)
    }
    fn url(&self) -> String {
        cluster(&["url", &self.0]).trim().to_string()
    }
}

impl Drop for ClusterVhost {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_path("scripts/rabbit-cluster.sh")).args(["ctl", "1", "delete_vhost", &self.0]).output();
    }
}

/// Brings a killed node back even when the test fails.
struct Restart(u8);
impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_path("scripts/rabbit-cluster.sh")).args(["start-node", &self.0.to_string()]).output();
    }
}

/// The node (1..3) leading quorum queue `queue`.
fn leader_of(vhost: &str, queue: &str) -> u8 {
    let out = cluster(&["ctl", "1", "list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "leader"]);
    let line = out.lines().find(|l| l.split_whitespace().next() == Some(queue)).unwrap_or_else(|| panic!("no queue {queue} in {out}"));
    let node = line.split_whitespace().nth(1).unwrap_or_default();
    node.strip_prefix("zrs").and_then(|r| r.chars().next()).and_then(|c| c.to_digit(10)).unwrap_or_else(|| panic!("leader? {line}")) as u8
}

fn fields(uuid: &str) -> Value {
    json!({
        "uuid": uuid, "name": format!("cl-{}", &uuid[..8]), "image": "busybox:latest", "image_pull_policy": "ifnotpresent",
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"],
        "memory": "16", "cpu": 0.1, "status": "Creating",
        "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    })
}

/// (status, task_state) of every container row of the worker's database.
fn rows(w: &Worker) -> HashMap<String, (String, String)> {
    let out = Command::new("mariadb")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "-N", "-B", &w.db.name, "-e"])
        .arg("SELECT uuid, status, IFNULL(task_state,'') FROM container")
        .output()
        .expect("mariadb client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 3).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect()
}

/// Docker containers named `zun-<uuid>` (any state).
fn docker_count(uuid: &str) -> usize {
    let out = Command::new("docker").args(["ps", "-a", "-q", "--filter", &format!("name=^/zun-{uuid}$")]).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

/// Removes the containers the test made, even when it fails.
struct Containers(Vec<String>);
impl Drop for Containers {
    fn drop(&mut self) {
        let names: Vec<String> = self.0.iter().map(|u| format!("zun-{u}")).collect();
        for chunk in names.chunks(50) {
            let _ = Command::new("docker").args(["rm", "-f"]).args(chunk).output();
        }
    }
}

/// The UTC time of a worker log line (tracing's RFC 3339 prefix).
fn line_time(line: &str) -> Option<SystemTime> {
    let ts = line.split_whitespace().next()?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_micros(t.timestamp_micros().try_into().ok()?))
}

/// Times of the RPC server's "consuming" lines (one per session), and which port.
fn consuming_lines(w: &Worker) -> Vec<(SystemTime, String)> {
    w.log_text()
        .lines()
        .filter(|l| l.contains(" consuming") && l.contains("broker=") && !l.contains("zun-compute-rs consuming"))
        .filter_map(|l| {
            let port = l.split("broker=").nth(1)?.split('/').nth(2)?.rsplit(':').next()?.to_string();
            Some((line_time(l)?, port))
        })
        .collect()
}

fn quorum_conf() -> &'static str {
    "[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n"
}

/// The node leading the worker's server queue is SIGKILLed while 100 creates are sent
/// through zun's real rpcapi: none is lost, none runs twice, and the time from the kill
/// to the worker consuming again (on another node) is measured and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_queue_leader_mid_stream_loses_nothing() {
    let _lock = cluster_lock(true);
    let vhost = ClusterVhost::new();
    let w = Worker::start_on(Some(&vhost.url()), "", quorum_conf());
    let server_q = format!("zun-compute.{}", w.host);
    let leader = leader_of(&vhost.0, &server_q);
    let sessions_before = consuming_lines(&w).len();
    let uuids: Vec<String> = (0..CREATES).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let _cleanup = Containers(uuids.clone());

    // The stream, from a thread of its own (the client blocks).
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = {
        let (conf, host, uuids, sent) = (w.conf.clone(), w.host.clone(), uuids.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut zun = ZunClient::start(&conf, false);
            let mut failed = Vec::new();
            for u in &uuids {
                if let Err(e) = zun.cmd("rpcapi_create", json!({"fields": fields(u), "host": host, "run": false})) {
                    failed.push(format!("{u}: {e}"));
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
            failed
        })
    };
    wait_for(Duration::from_secs(60), "30 creates sent", || async { (sent.load(std::sync::atomic::Ordering::SeqCst) >= 30).then_some(()) })
        .await;

    // SIGKILL the leader's VM ourselves, to know the instant.
    let pid: i32 = std::fs::read_to_string(format!("{}/rabbit-cluster/zrs{leader}/beam.pid", state_dir()))
        .expect("beam.pid")
        .trim()
        .parse()
        .expect("pid");
    let _restart = Restart(leader);
    let killed_at = SystemTime::now();
    let killed = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    assert!(killed.success(), "kill -KILL {pid}");
    let killed_port = (5790 + leader as u32).to_string();

    let (resumed, port) =
        wait_for(Duration::from_secs(30), "the worker consuming again", || async { consuming_lines(&w).get(sessions_before).cloned() })
            .await;
    let gap = resumed.duration_since(killed_at).unwrap_or_default();
    println!("FAILOVER leader=zrs{leader} consuming again after {:.3} s on port {port}", gap.as_secs_f64());
    assert_ne!(port, killed_port, "the worker reconnected to the node that was killed");

    let failed = tokio::task::block_in_place(|| stream.join()).expect("stream thread");
    assert!(failed.is_empty(), "creates the client could not send: {failed:?}");

    // Every create ends (not Creating, no task) with exactly one container.
    let settled = wait_for(Duration::from_secs(180), "every create settled", || async {
        let rows = rows(&w);
        let done = uuids.iter().filter(|u| rows.get(*u).is_some_and(|(s, t)| s != "Creating" && t.is_empty())).count();
        (done == CREATES).then_some(rows)
    })
    .await;
    let errors: Vec<_> = settled.iter().filter(|(u, (s, _))| uuids.contains(u) && s == "Error").collect();
    assert!(errors.is_empty(), "creates ended in Error: {errors:?}");
    let twice: Vec<&String> = uuids.iter().filter(|u| docker_count(u) != 1).collect();
    assert!(twice.is_empty(), "containers not created exactly once: {twice:?}");
    let log = w.log_text();
    assert_eq!(log.matches("adopting it").count(), 0, "a create ran twice (adopted its own container)");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "a handled failover logged errors: {errors:?}");
}

/// Ten workers with the same three-host `transport_url` spread their listening
/// connections over the nodes (oslo shuffles its hosts; so do we).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_workers_spread_over_the_nodes() {
    let _lock = cluster_lock(false);
    let vhost = ClusterVhost::new();
    let url = vhost.url();
    let started = Instant::now();
    // Started five at a time (each builds its own database first).
    let mut workers: Vec<Worker> = Vec::new();
    for _ in 0..2 {
        let batch: Vec<_> = (0..5)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || Worker::start_on(Some(&url), "", ""))
            })
            .collect();
        workers.extend(batch.into_iter().map(|h| h.join().expect("worker start")));
    }
    let mut per_port: HashMap<String, usize> = HashMap::new();
    for w in &workers {
        let lines = consuming_lines(w);
        let (_, port) = lines.first().cloned().expect("a consuming line");
        *per_port.entry(port).or_default() += 1;
    }
    println!("SPREAD {per_port:?} (10 workers started in {:.1} s)", started.elapsed().as_secs_f64());
    assert!(per_port.values().all(|n| *n < 10), "all ten workers on one node: {per_port:?}");
    routing_over_ten_hosts(&workers).await;
}

/// An admin request context with the given request id.
fn ctx(request_id: &str) -> zun_compute_rs::oslo::RequestContext {
    let mut m = serde_json::Map::new();
    m.insert("is_admin".into(), json!(true));
    m.insert("request_id".into(), json!(request_id));
    m.insert("roles".into(), json!(["admin"]));
    m.insert("project_id".into(), json!("6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b"));
    zun_compute_rs::oslo::RequestContext::new(m)
}

/// Ten hosts on one cluster: casts to `zun-compute.<host>` reach that host only, casts to
/// the shared `zun-compute` topic reach exactly one worker each, and a fanout cast
/// reaches all ten. The casts are `image_search` of a private registry, which the
/// worker refuses at once (no Docker, no database): each shows in the handling worker's
/// log by its request id.
async fn routing_over_ten_hosts(workers: &[Worker]) {
    use std::sync::Arc;
    use zun_compute_rs::amqp::{client::RpcClient, AmqpSettings};
    let settings = zun_compute_rs::config::Settings::load(&[&workers[0].conf], std::iter::empty()).expect("worker conf");
    let client = RpcClient::connect(Arc::new(AmqpSettings::from_config(&settings).expect("amqp settings"))).await.expect("client");
    let args = || {
        let mut a = serde_json::Map::new();
        a.insert("image".into(), json!("registry.invalid:5000/nothing"));
        a.insert("exact_match".into(), json!(false));
        a
    };
    const PER_HOST: usize = 5;
    let started = Instant::now();
    let mut own: Vec<Vec<String>> = Vec::new();
    for w in workers {
        let ids: Vec<String> = (0..PER_HOST).map(|_| format!("req-{}", uuid::Uuid::new_v4())).collect();
        for id in &ids {
            client.cast(&ctx(id), Some(&w.host), "image_search", args()).await.expect("cast to a host");
        }
        own.push(ids);
    }
    let shared: Vec<String> = (0..workers.len()).map(|_| format!("req-{}", uuid::Uuid::new_v4())).collect();
    for id in &shared {
        client.cast(&ctx(id), None, "image_search", args()).await.expect("cast to the topic");
    }
    let fanout = format!("req-{}", uuid::Uuid::new_v4());
    client.fanout_cast(&ctx(&fanout), "image_search", args()).await.expect("fanout cast");
    // Every worker handled its own casts and the fanout copy.
    for (w, ids) in workers.iter().zip(&own) {
        wait_for(Duration::from_secs(60), &format!("{} to handle its casts and the fanout", w.host), || {
            let log = w.log_text();
            let done = ids.iter().chain(std::iter::once(&fanout)).all(|id| log.contains(id.as_str()));
            async move { done.then_some(()) }
        })
        .await;
    }
    // The shared-topic casts: each handled by exactly one worker.
    wait_for(Duration::from_secs(60), "the topic casts to be handled", || {
        let logs: Vec<String> = workers.iter().map(Worker::log_text).collect();
        let done = shared.iter().all(|id| logs.iter().any(|l| l.contains(id.as_str())));
        async move { done.then_some(()) }
    })
    .await;
    println!(
        "ROUTING: {} host casts, {} topic casts and 1 fanout handled in {:.1} s",
        PER_HOST * workers.len(),
        shared.len(),
        started.elapsed().as_secs_f64()
    );
    let logs: Vec<String> = workers.iter().map(Worker::log_text).collect();
    for (i, (w, log)) in workers.iter().zip(&logs).enumerate() {
        for (j, ids) in own.iter().enumerate() {
            for id in ids {
                let n = log.matches(id.as_str()).count();
                if i == j {
                    assert!(n >= 1, "{}: its own cast {id} not handled", w.host);
                } else {
                    assert_eq!(n, 0, "{} handled {id}, a cast to {}", w.host, workers[j].host);
                }
            }
        }
    }
    let mut topic_spread = Vec::new();
    for id in &shared {
        let handlers: Vec<usize> = logs.iter().enumerate().filter(|(_, l)| l.contains(id.as_str())).map(|(i, _)| i).collect();
        assert_eq!(handlers.len(), 1, "topic cast {id} handled by workers {handlers:?}");
        topic_spread.push(handlers[0]);
    }
    println!("ROUTING: topic casts handled by workers {topic_spread:?}");
}

/// How many times the worker ran the method of request `id` (its one settle line: "done"
/// or "method failed").
fn runs_of(log: &str, id: &str) -> usize {
    let key = format!("request_id={id}");
    log.lines().filter(|l| l.contains(&key) && (l.contains("method failed") || l.contains(" done"))).count()
}

/// A stream of `image_search` casts to the worker's host, every 10 ms, each recorded with
/// the time just before its publish, by a client that reaches the cluster only through the
/// two nodes the worker does not consume from: what is measured is the worker's failover,
/// not the client's. Started once 50 casts are out.
struct CastStream {
    /// The node the worker consumes from, and its AMQP port.
    node: u8,
    port: String,
    client: std::sync::Arc<zun_compute_rs::amqp::client::RpcClient>,
    sent: std::sync::Arc<std::sync::Mutex<Vec<(String, SystemTime)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The casts the client could not publish.
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl CastStream {
    async fn start(w: &Worker, vhost: &ClusterVhost) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        use zun_compute_rs::amqp::{client::RpcClient, AmqpSettings};
        let (_, port) = consuming_lines(w).last().cloned().expect("a consuming line");
        let node = port.parse::<u32>().ok().and_then(|p| p.checked_sub(5790)).filter(|n| (1..=3).contains(n)).expect("cluster port") as u8;
        let others: Vec<u8> = (1..=3).filter(|n| *n != node).collect();
        let client_url = format!(
            "rabbit://{}/{}",
            others.iter().map(|n| format!("guest:guest@127.0.0.1:{}", 5790 + *n as u32)).collect::<Vec<_>>().join(","),
            vhost.0
        );
        let text = std::fs::read_to_string(&w.conf).expect("worker conf");
        let text: String = text
            .lines()
            .map(|l| if l.starts_with("transport_url") { format!("transport_url = {client_url}") } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n");
        let client_conf = write_conf(w.dir.path(), "client.conf", &text);
        let settings = zun_compute_rs::config::Settings::load(&[&client_conf], std::iter::empty()).expect("client conf");
        let client =
            Arc::new(RpcClient::connect(Arc::new(AmqpSettings::from_config(&settings).expect("amqp settings"))).await.expect("client"));
        let sent: Arc<Mutex<Vec<(String, SystemTime)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (client, sent, stop, host) = (client.clone(), sent.clone(), stop.clone(), w.host.clone());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("req-{}", uuid::Uuid::new_v4());
                    let at = SystemTime::now();
                    if let Err(e) = client.cast(&ctx(&id), Some(&host), "image_search", Self::args()).await {
                        failed.push(format!("{id}: {e}"));
                    }
                    sent.lock().unwrap().push((id, at));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                failed
            })
        };
        wait_for(Duration::from_secs(60), "50 casts sent", || async { (sent.lock().unwrap().len() >= 50).then_some(()) }).await;
        CastStream { node, port, client, sent, stop, task }
    }

    /// An `image_search` of a registry nobody serves: answered at once (with an error).
    fn args() -> serde_json::Map<String, Value> {
        let mut a = serde_json::Map::new();
        a.insert("image".into(), json!("registry.invalid:5000/nothing"));
        a.insert("exact_match".into(), json!(false));
        a
    }
}

/// Classic queues (the default): the node holding the worker's queues (the node it
/// listens on; non-durable classic queues live on the node that declared them) is
/// SIGKILLed in the middle of a stream of casts. The queues and whatever was only in
/// them die with the node. What the worker guarantees, asserted: it consumes again on a
/// live node with its queues declared there, never runs a message twice, never wedges
/// (every cast published after it consumes again runs, and a call then gets its reply).
/// What is lost is recorded, and bounded structurally: only casts published before the
/// worker consumed again can be lost (those still queued on the dead node, and those
/// published while no queue was bound: unroutable, dropped by the exchange).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_queues_lose_only_what_was_on_the_dead_node() {
    use std::sync::atomic::Ordering;
    let _lock = cluster_lock(true);
    let vhost = ClusterVhost::new();
    let w = Worker::start_on(Some(&vhost.url()), "", "");
    let sessions_before = consuming_lines(&w).len();
    let CastStream { node, port, client, sent, stop, task: stream } = CastStream::start(&w, &vhost).await;
    let args = CastStream::args;

    let pid: i32 = std::fs::read_to_string(format!("{}/rabbit-cluster/zrs{node}/beam.pid", state_dir()))
        .expect("beam.pid")
        .trim()
        .parse()
        .expect("pid");
    let _restart = Restart(node);
    let killed_at = SystemTime::now();
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill").success(), "kill -KILL {pid}");
    let (resumed, new_port) =
        wait_for(Duration::from_secs(30), "the worker consuming again", || async { consuming_lines(&w).get(sessions_before).cloned() })
            .await;
    assert_ne!(new_port, port, "the worker reconnected to the node that was killed");
    // 50 more casts after the worker consumes again, then the stream stops.
    let after = |s: &[(String, SystemTime)]| s.iter().filter(|(_, t)| *t > resumed).count();
    wait_for(Duration::from_secs(60), "50 casts sent after the failover", || async { (after(&sent.lock().unwrap()) >= 50).then_some(()) })
        .await;
    stop.store(true, Ordering::SeqCst);
    let failed = stream.await.expect("stream task");
    assert!(failed.is_empty(), "casts the client could not publish: {failed:?}");

    // A call after recovery gets its reply (image_search of a private registry: an error
    // reply, which is a reply). It is queued behind every cast routed to the new queue.
    let reply =
        client.call(&ctx(&format!("req-{}", uuid::Uuid::new_v4())), Some(&w.host), "image_search", args(), Duration::from_secs(30)).await;
    assert!(matches!(reply, Err(zun_compute_rs::amqp::client::CallError::Remote { .. })), "call after the failover: {reply:?}");

    let sent = sent.lock().unwrap().clone();
    let log = wait_for(Duration::from_secs(60), "every cast published after the failover to run", || {
        let log = w.log_text();
        let done = sent.iter().filter(|(_, t)| *t > resumed).all(|(id, _)| runs_of(&log, id) >= 1);
        async move { done.then_some(log) }
    })
    .await;
    let twice: Vec<&String> = sent.iter().map(|(id, _)| id).filter(|id| runs_of(&log, id) > 1).collect();
    assert!(twice.is_empty(), "casts run more than once: {twice:?}");
    let lost: Vec<&(String, SystemTime)> = sent.iter().filter(|(id, _)| runs_of(&log, id) == 0).collect();
    let late: Vec<&String> = lost.iter().filter(|(_, t)| *t > resumed).map(|(id, _)| id).collect();
    assert!(late.is_empty(), "casts published after the worker consumed again were lost: {late:?}");
    let before_kill = lost.iter().filter(|(_, t)| *t < killed_at).count();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "a handled failover logged errors: {errors:?}");
    println!(
        "CLASSIC killed zrs{node} (port {port}); consuming again on {new_port} after {:.3} s; {} casts sent ({} before the kill, {} after the resume); \
         lost {} ({} published before the kill, {} between the kill and the resume); run twice 0",
        resumed.duration_since(killed_at).unwrap_or_default().as_secs_f64(),
        sent.len(),
        sent.iter().filter(|(_, t)| *t < killed_at).count(),
        after(&sent),
        lost.len(),
        before_kill,
        lost.len() - before_kill,
    );
}

/// Removes the partition rules (`rabbit-cluster.sh heal`), even when the test fails.
struct Heal;
impl Drop for Heal {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(repo_path("scripts/rabbit-cluster.sh")).arg("heal").output();
    }
}

/// True when node `n` answers its CLI and sees all three nodes running.
fn whole_from(n: u8) -> bool {
    let out = Command::new("bash")
        .arg(repo_path("scripts/rabbit-cluster.sh"))
        .args(["ctl", &n.to_string(), "eval", "length(rabbit_mnesia:cluster_nodes(running))."])
        .output();
    out.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "3")
}

/// A partition of one node: the node the worker listens on (and where its quorum queues
/// were declared, so it leads them) is cut off by iptables on its own loopback ports
/// (`rabbit-cluster.sh partition`: its distribution port and connections silently
/// dropped, its AMQP port answering the worker's next heartbeat with a reset). With
/// quorum queues the majority elects new leaders; the worker moves to a majority node;
/// every cast, published through the majority before, during and after, runs exactly
/// once; a call afterwards gets its reply. Healed before `net_ticktime` (60 s) passes, so
/// RabbitMQ's own partition handling (pause_minority) does not engage; the cluster is
/// whole again before the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_node_the_worker_moves_and_nothing_is_lost() {
    use std::sync::atomic::Ordering;
    let _lock = cluster_lock(true);
    let heal = Heal;
    let vhost = ClusterVhost::new();
    let w =
        Worker::start_on(Some(&vhost.url()), "", "[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\nheartbeat_timeout_threshold = 4\n");
    let sessions_before = consuming_lines(&w).len();
    let CastStream { node, port, client, sent, stop, task: stream } = CastStream::start(&w, &vhost).await;
    let args = CastStream::args;

    let cut_at = SystemTime::now();
    let _ = tokio::task::block_in_place(|| cluster(&["partition", &node.to_string()]));
    let (resumed, new_port) =
        wait_for(Duration::from_secs(90), "the worker consuming again", || async { consuming_lines(&w).get(sessions_before).cloned() })
            .await;
    assert_ne!(new_port, port, "the worker consumed again on the partitioned node");
    let after = |s: &[(String, SystemTime)]| s.iter().filter(|(_, t)| *t > resumed).count();
    wait_for(Duration::from_secs(90), "50 casts sent after the move", || async { (after(&sent.lock().unwrap()) >= 50).then_some(()) })
        .await;
    stop.store(true, Ordering::SeqCst);
    let failed = stream.await.expect("stream task");
    assert!(failed.is_empty(), "casts the client could not publish: {failed:?}");
    let healed_at = SystemTime::now();
    drop(heal);

    let reply =
        client.call(&ctx(&format!("req-{}", uuid::Uuid::new_v4())), Some(&w.host), "image_search", args(), Duration::from_secs(60)).await;
    assert!(matches!(reply, Err(zun_compute_rs::amqp::client::CallError::Remote { .. })), "call after the partition: {reply:?}");
    let sent = sent.lock().unwrap().clone();
    let log = wait_for(Duration::from_secs(120), "every cast to run", || {
        let log = w.log_text();
        let done = sent.iter().all(|(id, _)| runs_of(&log, id) >= 1);
        async move { done.then_some(log) }
    })
    .await;
    let twice: Vec<&String> = sent.iter().map(|(id, _)| id).filter(|id| runs_of(&log, id) > 1).collect();
    assert!(twice.is_empty(), "casts run more than once: {twice:?}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "a handled partition logged errors: {errors:?}");

    // The cluster whole again, seen from the node that was cut off.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut repaired = false;
    while !whole_from(node) {
        if Instant::now() >= deadline {
            // RabbitMQ's own hang after a partition (the reference's note 2): restart the node.
            cluster(&["kill-node", &node.to_string()]);
            cluster(&["start-node", &node.to_string()]);
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let whole_at = SystemTime::now();
    let secs = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default().as_secs_f64();
    println!(
        "PARTITION zrs{node} (port {port}) cut; worker consuming on {new_port} after {:.3} s; healed after {:.1} s; whole again {:.1} s later{}; \
         {} casts sent ({} before the cut, {} after the move), lost 0, run twice 0",
        secs(cut_at, resumed),
        secs(cut_at, healed_at),
        secs(healed_at, whole_at),
        if repaired { " (node restarted: it hung)" } else { "" },
        sent.len(),
        sent.iter().filter(|(_, t)| *t < cut_at).count(),
        after(&sent),
    );
}
