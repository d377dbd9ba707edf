//! The Rust half of `scripts/bench` (a bench target with `harness = false`, built in
//! release by `cargo bench --no-run`). `scripts/bench-run.py` drives it; it has one
//! subcommand per measurement and prints one JSON object per line on stdout:
//!
//! - `codec [--seconds S] [--repeat R]`: decode + typed parse of the captured
//!   `container_create` and `container_show` bodies (envelope, message, context,
//!   `Container` with field validation) and encode of a `container_show` reply, in
//!   messages per CPU-second of the benchmarking thread (median of R runs of S s each).
//! - `serve --conf FILE [--expect N]`: our RPC server stack (amqp `RpcServer` + rpc
//!   `Dispatcher` + oslo codec) on the `[DEFAULT] transport_url` / `host` of FILE, serving
//!   a no-op endpoint (`noop`, `echo_args`). Prints `{"ready": ...}` once consuming; with
//!   `--expect N` it also prints `{"drained": ...}` when the N-th request ran (time and
//!   CPU from the start of the server, and from the first request, to the N-th). Stops
//!   when stdin closes.
//! - `serve-floor --conf FILE [--expect N]`: the floor of `serve`: bare lapin on the
//!   same connection settings, consuming `<topic>.<host>` (declared beforehand by
//!   `serve`), no codec: each delivery is acknowledged and, when its raw bytes carry a
//!   `_reply_q` and a `_msg_id`, answered with a fixed oslo reply (no publisher confirm).
//!   Same output lines as `serve`.
//! - `docker-floor --n N --concurrency C --image IMG --prefix P`: N container creates +
//!   starts straight to the Docker API, C at a time; prints the elapsed time, then
//!   removes the containers (not timed).
//! - without a subcommand (what `cargo bench` runs): a short codec run.
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zun_compute_rs::admin::{Health, Metrics};
use zun_compute_rs::amqp::{AmqpSettings, Publisher, RpcServer};
use zun_compute_rs::config::Settings;
use zun_compute_rs::docker::{ContainerCreateBody, DockerClient, DockerSettings, HostConfig};
use zun_compute_rs::oslo::{decode_body, BodyMeta, Container, Reply, RpcMessage};
use zun_compute_rs::rpc::{Dispatcher, Endpoint, MethodFuture, Request};

/// The worker's allocator (src/main.rs): the codec rows measure what the worker pays, and
/// the serde_json floors beside them run on the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("codec") => codec(&args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("serve-floor") => serve_floor(&args[1..]),
        Some("docker-floor") => docker_floor(&args[1..]),
        // `cargo bench` passes `--bench` (and maybe a filter): a quick codec run.
        _ => codec(&["--seconds".into(), "0.5".into(), "--repeat".into(), "1".into()]),
    };
    if let Err(e) = result {
        eprintln!("zunrs_bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, String>;

/// `--name value` from the argument list.
fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn opt_num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Res<T> {
    match opt(args, name) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| format!("{name}: not a number: {s}")),
    }
}

fn emit(v: Value) {
    println!("{v}");
}

/// utime + stime of this process, in clock ticks, from /proc/self/stat.
fn cpu_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let n = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    n(14) + n(15)
}

// ---------------------------------------------------------------------------- codec

struct Fixture {
    meta: BodyMeta,
    body: Vec<u8>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/oslo")
}

fn load_fixture(name: &str) -> Res<Value> {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn request_fixture(name: &str) -> Res<Fixture> {
    let fx = load_fixture(name)?;
    let props = &fx["properties"];
    let s = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
    let meta = BodyMeta {
        content_type: s("content_type"),
        content_encoding: s("content_encoding"),
        compression: props.get("headers").and_then(|h| h.get("compression")).and_then(Value::as_str).map(str::to_string),
    };
    let body = fx["body_raw"].as_str().ok_or(format!("{name}: no body_raw"))?.as_bytes().to_vec();
    Ok(Fixture { meta, body })
}

/// What the server does with a request body before the method runs: envelope, message,
/// context, and the `container` argument as a typed, validated `Container`.
fn full_decode(fx: &Fixture) -> Res<(RpcMessage, Container)> {
    let map = decode_body(&fx.meta, &fx.body).map_err(|e| e.to_string())?;
    let msg = RpcMessage::from_map(map).map_err(|e| e.to_string())?;
    let c = Container::from_value(msg.arg("container").ok_or("no container argument")?).map_err(|e| e.to_string())?;
    c.validate().map_err(|e| e.to_string())?;
    black_box(msg.context.request_id());
    Ok((msg, c))
}

/// What the server does to answer `container_show`: the object back to its primitive,
/// the reply message, the 2.0 envelope as bytes (as `Publisher::send_reply` writes it).
fn reply_encode(c: &Container, msg_id: &str) -> Vec<u8> {
    Reply::success(msg_id, c.to_value()).encode()
}

/// The oslo 2.0 envelope as serde_json sees it: the message is a JSON string.
#[derive(serde::Deserialize)]
struct FloorEnvelope {
    #[serde(rename = "oslo.version")]
    _version: serde::de::IgnoredAny,
    #[serde(rename = "oslo.message")]
    message: String,
}

/// Decode floor: serde_json parses the envelope (keeping only the message string), then
/// the message into `IgnoredAny` (syntax checked, nothing built).
fn floor_decode_ignored(body: &[u8]) -> Res<()> {
    let env: FloorEnvelope = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let _: serde::de::IgnoredAny = serde_json::from_str(&env.message).map_err(|e| e.to_string())?;
    Ok(())
}

/// Decode floor with a tree: the envelope into `Value`, then the message into `Value`.
fn floor_decode_value(body: &[u8]) -> Res<Value> {
    let outer: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let text = outer.get("oslo.message").and_then(Value::as_str).ok_or("no oslo.message")?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Encode floor: serde_json writes the reply `Value`, then the envelope around it.
fn floor_encode(reply: &Value) -> Vec<u8> {
    let inner = serde_json::to_string(reply).unwrap_or_default();
    serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner})).unwrap_or_default()
}

/// CPU time of the calling thread (ns on CPU, /proc/thread-self/schedstat): the codec
/// rates are per CPU-second, so other load on the machine does not count against them.
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .map(|ns| ns as f64 / 1e9)
        .unwrap_or(0.0)
}

/// Operations per CPU-second of `f`: runs for `secs` of CPU time, `repeat` times; the median.
fn rate(secs: f64, repeat: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let mut rates = Vec::new();
    for _ in 0..repeat.max(1) {
        let start = thread_cpu_s();
        let mut n = 0u64;
        while thread_cpu_s() - start < secs {
            for _ in 0..100 {
                f();
            }
            n += 100;
        }
        rates.push(n as f64 / (thread_cpu_s() - start));
    }
    median(&mut rates)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

fn codec(args: &[String]) -> Res<()> {
    let secs: f64 = opt_num(args, "--seconds", 2.0)?;
    let repeat: usize = opt_num(args, "--repeat", 3)?;
    let create = request_fixture("container_create_cast.json")?;
    let show = request_fixture("container_show_call_request.json")?;
    // The container_show reply: its result decoded once, outside the timed loop.
    let reply_fx = request_fixture("container_show_reply_success.json")?;
    let reply_map = decode_body(&reply_fx.meta, &reply_fx.body).map_err(|e| e.to_string())?;
    let reply = Reply::from_map(&reply_map).map_err(|e| e.to_string())?;
    let shown = Container::from_value(&reply.result).map_err(|e| e.to_string())?;
    // Sanity: the decode works and the encode reproduces the captured bytes' length.
    full_decode(&create)?;
    let (show_msg, _) = full_decode(&show)?;
    let msg_id = show_msg.msg_id.clone().unwrap_or_default();
    let encoded = reply_encode(&shown, &msg_id);
    let mut errors = 0u64;
    let create_rate = rate(secs, repeat, || {
        if black_box(full_decode(black_box(&create))).is_err() {
            errors += 1;
        }
    });
    let show_rate = rate(secs, repeat, || {
        if black_box(full_decode(black_box(&show))).is_err() {
            errors += 1;
        }
    });
    let encode_rate = rate(secs, repeat, || {
        black_box(reply_encode(black_box(&shown), &msg_id));
    });
    // The encode alone, of the reply holding the same result `Value` the floor writes
    // (the worker's `container_show` moves its object into the reply, so it pays this
    // plus a move; the row above pays a copy of the object's data as well).
    let built = Reply::success(&msg_id, shown.to_value());
    let encode_only_rate = rate(secs, repeat, || {
        black_box(black_box(&built).encode());
    });
    // The floors: serde_json alone on the same bytes / the same value.
    floor_decode_ignored(&create.body)?;
    floor_decode_value(&create.body)?;
    let create_floor_ignored = rate(secs, repeat, || {
        if black_box(floor_decode_ignored(black_box(&create.body))).is_err() {
            errors += 1;
        }
    });
    let create_floor_value = rate(secs, repeat, || {
        if black_box(floor_decode_value(black_box(&create.body))).is_err() {
            errors += 1;
        }
    });
    let reply_value = Value::Object(Reply::success(&msg_id, shown.to_value()).to_map());
    let encode_floor = rate(secs, repeat, || {
        black_box(floor_encode(black_box(&reply_value)));
    });
    if errors > 0 {
        return Err(format!("{errors} decode errors"));
    }
    emit(json!({
        "impl": "rust",
        "create_decode_per_s": create_rate,
        "show_decode_per_s": show_rate,
        "reply_encode_per_s": encode_rate,
        "reply_encode_only_per_s": encode_only_rate,
        "create_floor_ignored_per_s": create_floor_ignored,
        "create_floor_value_per_s": create_floor_value,
        "reply_encode_floor_per_s": encode_floor,
        "floor_reply_bytes": floor_encode(&reply_value).len(),
        "create_body_bytes": create.body.len(),
        "show_body_bytes": show.body.len(),
        "reply_bytes": encoded.len(),
        "captured_reply_bytes": reply_fx.body.len(),
    }));
    Ok(())
}

// ---------------------------------------------------------------------------- serve

/// A no-op endpoint that counts what it ran, for the drain measurement.
struct NoopEndpoint {
    count: AtomicU64,
    expect: u64,
    /// (time, cpu ticks) at the first request.
    first: Mutex<Option<(Instant, u64)>>,
    /// (time, cpu ticks) when the server started consuming.
    ready: Mutex<Option<(Instant, u64)>>,
}

impl NoopEndpoint {
    fn seen(&self) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 {
            if let Ok(mut f) = self.first.lock() {
                *f = Some((Instant::now(), cpu_ticks()));
            }
        }
        if self.expect > 0 && n == self.expect {
            let first = self.first.lock().ok().and_then(|f| *f);
            let ready = self.ready.lock().ok().and_then(|f| *f);
            if let (Some((t0, c0)), Some((tr, cr))) = (first, ready) {
                let now = cpu_ticks();
                emit(json!({
                    "drained": n,
                    "first_to_last_s": t0.elapsed().as_secs_f64(),
                    "cpu_ticks": now.saturating_sub(c0),
                    "ready_to_last_s": tr.elapsed().as_secs_f64(),
                    "cpu_ticks_since_ready": now.saturating_sub(cr),
                }));
            }
        }
    }
}

impl Endpoint for NoopEndpoint {
    fn submit(&self, req: Request) -> Option<MethodFuture> {
        match req.method.as_str() {
            "noop" => {
                self.seen();
                Some(Box::pin(async { Ok(Value::Null) }))
            }
            "echo_args" => {
                self.seen();
                Some(Box::pin(async move { Ok(Value::Object(req.args)) }))
            }
            _ => None,
        }
    }
}

fn serve(args: &[String]) -> Res<()> {
    let conf = opt(args, "--conf").ok_or("serve needs --conf FILE")?;
    let expect: u64 = opt_num(args, "--expect", 0)?;
    let settings = Settings::load(&[&conf], Vec::new()).map_err(|e| e.to_string())?;
    let amqp = Arc::new(AmqpSettings::from_config(&settings).map_err(|e| e.to_string())?);
    // The worker's own runtime: tokio's multi-thread default, as src/main.rs builds it.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let endpoint = Arc::new(NoopEndpoint { count: AtomicU64::new(0), expect, first: Mutex::new(None), ready: Mutex::new(None) });
        let dispatcher = Arc::new(Dispatcher::new(endpoint.clone()));
        let publisher = Arc::new(Publisher::new(amqp.clone()));
        let server = Arc::new(RpcServer::new(amqp, dispatcher, publisher, Arc::new(Metrics::new()), Arc::new(Health::default())));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        // The drain clock starts as the server starts: before the connection, the
        // topology and the consumers, which the Python server also does before "ready".
        if let Ok(mut r) = endpoint.ready.lock() {
            *r = Some((Instant::now(), cpu_ticks()));
        }
        let task = tokio::spawn(server.run(stop_rx, Duration::from_secs(5), Some(ready_tx)));
        match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
            Ok(Ok(())) => emit(json!({"ready": true, "pid": std::process::id()})),
            _ => return Err("the RPC server did not start consuming in 30 s".to_string()),
        }
        // Stop when stdin closes.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
        })
        .await;
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        emit(json!({"stopped": true, "handled": endpoint.count.load(Ordering::SeqCst)}));
        Ok(())
    })
}

// ---------------------------------------------------------------------------- serve floor

/// The string value of `key` inside the envelope's `oslo.message` string, found in the
/// raw bytes (`\"key\": \"value\"`), without parsing.
fn raw_field<'a>(body: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let needle = format!("\\\"{key}\\\": \\\"");
    let needle = needle.as_bytes();
    let at = body.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let len = body[at..].iter().position(|&b| b == b'\\' || b == b'"')?;
    Some(&body[at..at + len])
}

fn serve_floor(args: &[String]) -> Res<()> {
    use futures_util::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
    use lapin::types::{FieldTable, ShortString};
    let conf = opt(args, "--conf").ok_or("serve-floor needs --conf FILE")?;
    let expect: u64 = opt_num(args, "--expect", 0)?;
    let settings = Settings::load(&[&conf], Vec::new()).map_err(|e| e.to_string())?;
    let amqp = AmqpSettings::from_config(&settings).map_err(|e| e.to_string())?;
    let uri = amqp.brokers.first().ok_or("no broker")?.uri(amqp.heartbeat, None);
    let queue = format!("{}.{}", amqp.topic, amqp.server);
    let prefetch = amqp.prefetch;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let endpoint = Arc::new(NoopEndpoint { count: AtomicU64::new(0), expect, first: Mutex::new(None), ready: Mutex::new(None) });
        if let Ok(mut r) = endpoint.ready.lock() {
            *r = Some((Instant::now(), cpu_ticks()));
        }
        let e = |e: lapin::Error| e.to_string();
        let conn = lapin::ConnectionBuilder::new().map_err(e)?.with_uri_str(uri).connect().await.map_err(e)?;
        let ch = conn.create_channel().await.map_err(e)?;
        ch.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(e)?;
        // `serve` declared the queue (not auto-delete): only check that it is there.
        ch.queue_declare(ShortString::from(queue.as_str()), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default())
            .await
            .map_err(e)?;
        let pub_ch = Arc::new(conn.create_channel().await.map_err(e)?);
        let mut consumer = ch
            .basic_consume(ShortString::from(queue.as_str()), ShortString::from("floor"), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(e)?;
        emit(json!({"ready": true, "pid": std::process::id()}));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
            let _ = stop_tx.send(());
        });
        let props = zun_compute_rs::amqp::oslo_properties(None);
        let serial = AtomicU64::new(0);
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                d = consumer.next() => {
                    let Some(Ok(d)) = d else { break };
                    endpoint.seen();
                    let reply = match (raw_field(&d.data, "_reply_q"), raw_field(&d.data, "_msg_id")) {
                        (Some(q), Some(id)) => {
                            let q = String::from_utf8_lossy(q).into_owned();
                            let id = String::from_utf8_lossy(id);
                            let uid = format!("{:032x}", serial.fetch_add(1, Ordering::Relaxed));
                            let body = format!(
                                "{{\"oslo.version\": \"2.0\", \"oslo.message\": \"{{\\\"result\\\": null, \\\"failure\\\": null, \\\"ending\\\": true, \\\"_msg_id\\\": \\\"{id}\\\", \\\"_unique_id\\\": \\\"{uid}\\\"}}\"}}"
                            );
                            Some((q, body))
                        }
                        _ => None,
                    };
                    let pub_ch = pub_ch.clone();
                    let props = props.clone();
                    tokio::spawn(async move {
                        if let Some((q, body)) = reply {
                            let _ = pub_ch
                                .basic_publish(ShortString::from(""), ShortString::from(q.as_str()), BasicPublishOptions::default(), body.as_bytes(), props)
                                .await;
                        }
                        let _ = d.acker.ack(BasicAckOptions::default()).await;
                    });
                }
            }
        }
        let _ = conn.close(200, ShortString::from("floor stopping")).await;
        emit(json!({"stopped": true, "handled": endpoint.count.load(Ordering::SeqCst)}));
        Ok(())
    })
}

// ---------------------------------------------------------------------------- docker floor

fn docker_floor(args: &[String]) -> Res<()> {
    let n: usize = opt_num(args, "--n", 50)?;
    let concurrency: usize = opt_num(args, "--concurrency", 16)?;
    let image = opt(args, "--image").unwrap_or_else(|| "127.0.0.1:5000/busybox:latest".into());
    let prefix = opt(args, "--prefix").unwrap_or_else(|| format!("zunrs-bench-floor-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let docker = Arc::new(DockerClient::connect(&DockerSettings::default()).map_err(|e| e.to_string())?);
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..n {
            let docker = docker.clone();
            let permits = permits.clone();
            let name = format!("{prefix}-{i}");
            let image = image.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
                // What the worker asks for a busybox container: command, env, labels,
                // memory and CPU shares.
                let body = ContainerCreateBody {
                    image: Some(image),
                    cmd: Some(vec!["sleep".into(), "3600".into()]),
                    env: Some(vec!["K=V".into()]),
                    labels: Some([("app".to_string(), "bench".to_string())].into_iter().collect()),
                    host_config: Some(HostConfig { memory: Some(64 * 1024 * 1024), cpu_shares: Some(512), ..Default::default() }),
                    ..Default::default()
                };
                let id = docker.create(&name, body).await.map_err(|e| e.to_string())?;
                docker.start(&id).await.map_err(|e| e.to_string())?;
                Ok::<String, String>(id)
            }));
        }
        let mut ids = Vec::new();
        let mut failures = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(id)) => ids.push(id),
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        // Clean up (not timed), C at a time.
        let mut removals = Vec::new();
        for id in ids.clone() {
            let docker = docker.clone();
            let permits = permits.clone();
            removals.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                docker.remove(&id, true).await
            }));
        }
        for r in removals {
            let _ = r.await;
        }
        emit(json!({"n": n, "concurrency": concurrency, "started": ids.len(), "elapsed_s": elapsed, "failures": failures}));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("{} of {n} creates failed", failures.len()))
        }
    })
}
