//! Bad input, in process (no broker): 100,000 generated malformed deliveries (damaged
//! bytes, truncations, wrong envelopes, wrong property values, mistyped and missing
//! fields, hostile JSON) go through the envelope decoder and the RPC dispatcher. None may
//! panic, each must be settled (rejected, dropped as a duplicate, or run to an answer), and
//! a good message afterwards is still handled. A second pass sends part of the same stream
//! through the real compute manager (SQLite store, no Docker reachable), then a real create
//! that must end with its row in Error with a reason.
mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zun_compute_rs::oslo::{decode_body, BodyMeta, Container};
use zun_compute_rs::rpc::{Dispatcher, Disposition, Endpoint, MethodFuture, Request, RpcError};

const MESSAGES: usize = 100_000;

/// The real messages zun-api sends (golden fixtures): (properties, body).
fn seeds() -> Vec<(BodyMeta, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oslo");
    let mut out = Vec::new();
    for name in [
        "container_create_cast.json",
        "container_delete_cast.json",
        "container_show_call_request.json",
        "container_show_call_request_gzip.json",
        "container_logs_call_request.json",
        "call_request_json_types.json",
        "call_with_call_monitor_timeout_request.json",
    ] {
        let f: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(name)).expect("fixture")).expect("fixture JSON");
        let props = &f["properties"];
        let meta = BodyMeta {
            content_type: props["content_type"].as_str().map(String::from),
            content_encoding: props["content_encoding"].as_str().map(String::from),
            compression: props["headers"]["compression"].as_str().map(String::from),
        };
        let body = match (f["body_raw"].as_str(), f["body_b64"].as_str()) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (_, Some(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(b).expect("base64 body")
            }
            _ => continue,
        };
        out.push((meta, body));
    }
    assert_eq!(out.len(), 7, "fixtures missing");
    out
}

fn random_json(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 3 { 8 } else { 11 }) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 => Value::String(String::new()),
        5 => Value::String(
            ["None", "zun_object.data", "\u{0}", "\u{10ffff}", "1.0", "container_create", "_private", "9.9", "Creating"]
                [rng.random_range(0..9)]
            .into(),
        ),
        6 => Value::Number(serde_json::Number::from_string_unchecked("1".repeat(rng.random_range(20..400)))),
        7 => Value::String((0..rng.random_range(0..64)).map(|_| char::from(rng.random_range(0x20u8..0x7f))).collect()),
        8 => Value::Array((0..rng.random_range(0..4)).map(|_| random_json(rng, depth + 1)).collect()),
        9 => {
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..4) {
                let k = ["zun_object.name", "zun_object.version", "zun_object.data", "zun_object.namespace", "uuid", "x"]
                    [rng.random_range(0..6)];
                m.insert(k.into(), random_json(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => json!({"zun_object.name": "Container", "zun_object.namespace": "zun", "zun_object.version": "1.44",
            "zun_object.data": {"uuid": random_json(rng, depth + 1), "memory": random_json(rng, depth + 1)}}),
    }
}

/// Replaces, removes or adds one value somewhere in `v`.
fn mutate_json(rng: &mut StdRng, v: &mut Value) {
    let steps = rng.random_range(0..6);
    mutate_at(rng, v, steps);
}

fn mutate_at(rng: &mut StdRng, v: &mut Value, steps: u32) {
    if steps > 0 {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.random_range(0..m.len())).cloned().unwrap();
                if rng.random_bool(0.25) {
                    m.remove(&k);
                } else {
                    mutate_at(rng, m.get_mut(&k).unwrap(), steps - 1);
                }
                return;
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.random_range(0..a.len());
                mutate_at(rng, &mut a[i], steps - 1);
                return;
            }
            _ => {}
        }
    }
    match v {
        Value::Object(m) if rng.random_bool(0.3) => {
            let k = [
                "method",
                "args",
                "version",
                "namespace",
                "_msg_id",
                "_reply_q",
                "_unique_id",
                "_timeout",
                "_context_roles",
                "container",
                "zun_object.changes",
                "run",
            ][rng.random_range(0..12)];
            m.insert(k.into(), random_json(rng, 0));
        }
        other => *other = random_json(rng, 0),
    }
}

/// A new `_unique_id`, so the damage reaches the dispatcher instead of its duplicate filter.
fn fresh_unique_id(rng: &mut StdRng, inner: &mut Value) {
    if let Value::Object(m) = inner {
        m.insert("_unique_id".into(), Value::String(format!("{:032x}", rng.random::<u128>())));
    }
}

/// One malformed delivery made from a real one.
fn malformed(rng: &mut StdRng, seeds: &[(BodyMeta, Vec<u8>)]) -> (BodyMeta, Vec<u8>) {
    let (meta, body) = &seeds[rng.random_range(0..seeds.len())];
    let mut meta = meta.clone();
    let mut body = body.clone();
    // Most seeds are plain JSON envelopes; the gzip one is damaged at the byte level only.
    let envelope: Option<Value> = if meta.compression.is_none() { serde_json::from_slice(&body).ok() } else { None };
    match rng.random_range(0..12) {
        0 => body.truncate(rng.random_range(0..body.len().max(1))),
        1 => {
            for _ in 0..rng.random_range(1..12) {
                let i = rng.random_range(0..body.len().max(1));
                if i < body.len() {
                    body[i] = rng.random();
                }
            }
        }
        2 => {
            let at = rng.random_range(0..=body.len());
            let junk: Vec<u8> = (0..rng.random_range(1..32)).map(|_| rng.random()).collect();
            body.splice(at..at, junk);
        }
        3..=6 => {
            // Inside the inner message: a wrong value, a missing key, a stray key.
            if let Some(mut env) = envelope {
                let inner = env["oslo.message"].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok());
                if let Some(mut inner) = inner {
                    fresh_unique_id(rng, &mut inner);
                    for _ in 0..rng.random_range(1..4) {
                        mutate_json(rng, &mut inner);
                    }
                    env["oslo.message"] = if rng.random_bool(0.9) { Value::String(inner.to_string()) } else { inner };
                }
                body = env.to_string().into_bytes();
            }
        }
        7 => {
            // The envelope itself.
            if let Some(mut env) = envelope {
                if let Some(mut inner) = env["oslo.message"].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()) {
                    fresh_unique_id(rng, &mut inner);
                    env["oslo.message"] = Value::String(inner.to_string());
                }
                mutate_json(rng, &mut env);
                body = env.to_string().into_bytes();
            }
        }
        8 => {
            meta.content_type = [None, Some("text/plain"), Some("application/x-python-serialize"), Some(""), Some("application/JSON")]
                [rng.random_range(0..5)]
            .map(String::from);
        }
        9 => {
            meta.compression =
                Some(["application/x-gzip", "application/x-bz2", "application/x-lzma", "zlib", "garbage"][rng.random_range(0..5)].into());
        }
        10 => {
            let depth = rng.random_range(100..5000);
            body = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
            if rng.random_bool(0.5) {
                body = json!({"oslo.version": "2.0", "oslo.message": String::from_utf8(body).unwrap()}).to_string().into_bytes();
            }
        }
        _ => {
            let hostile = [
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_show\", \"args\": {\"container\": {\"__class__\": \"x\"}}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"\\ud800\", \"args\": {}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_create\", \"args\": {\"container\": {\"zun_object.name\": \"Container\", \"zun_object.namespace\": \"zun\", \"zun_object.version\": \"1.44\", \"zun_object.data\": {\"uuid\": \"u\", \"memory\": 1e999}}}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_delete\", \"args\": {\"container\": NaN}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_stop\", \"args\": {\"container\": {\"zun_object.name\": \"Container\", \"zun_object.namespace\": \"zun\", \"zun_object.version\": \"99.0\", \"zun_object.data\": {}}}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_start\", \"args\": {\"container\": {\"zun_object.name\": \"Container\", \"zun_object.namespace\": \"zun\", \"zun_object.version\": \"1.44\", \"zun_object.data\": {\"uuid\": [1], \"status\": 7, \"environment\": \"x\", \"cpu\": \"many\"}}}}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_logs\", \"args\": {\"container\": {\"zun_object.name\": \"Container\", \"zun_object.namespace\": \"zun\", \"zun_object.version\": \"1.44\", \"zun_object.data\": {\"uuid\": \"u\"}, \"zun_object.changes\": 5}}, \"_msg_id\": 3, \"_reply_q\": [\"q\"]}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"__bytes__\": \"aGVsbG8=\"}"}"#,
                r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"container_exec\", \"_timeout\": -1e308, \"_unique_id\": {}, \"args\": null}"}"#,
                "\u{feff}{}",
                "null",
                "{\"a\":1,\"a\":2}",
            ];
            body = hostile[rng.random_range(0..hostile.len())].as_bytes().to_vec();
        }
    }
    (meta, body)
}

/// An endpoint for the in-process pass: every compute method name, with the first thing
/// the real operations do to their `container` argument (typed decode and validation).
#[derive(Default)]
struct Probe {
    calls: AtomicUsize,
}

impl Endpoint for Probe {
    fn submit(&self, req: Request) -> Option<MethodFuture> {
        zun_compute_rs::compute::manager::method_mode(&req.method)?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let checked = match req.args.get("container") {
            Some(v) => {
                Container::from_value(v).map_err(RpcError::Object).and_then(|c| c.validate().map_err(|e| RpcError::invalid(e.to_string())))
            }
            None => Err(RpcError::builtin("TypeError", "missing required argument: 'container'")),
        };
        Some(Box::pin(async move { checked.map(|_| json!("ok")) }))
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    rejected: usize,
    duplicate: usize,
    ran_ok: usize,
    ran_err: usize,
}

/// Runs one delivery through `accept` and its future; panics are reported with the input.
async fn settle_one(d: &Dispatcher, meta: &BodyMeta, body: &[u8], out: &mut Outcomes) {
    let disposition = std::panic::catch_unwind(AssertUnwindSafe(|| d.accept(meta, body, false)));
    let disposition = disposition.unwrap_or_else(|_| panic!("accept panicked on {meta:?} {:?}", String::from_utf8_lossy(body)));
    match disposition {
        Disposition::Reject { .. } => out.rejected += 1,
        Disposition::Duplicate { .. } | Disposition::Held { .. } => out.duplicate += 1,
        Disposition::Run(run) => {
            use futures_util::FutureExt;
            let r = AssertUnwindSafe(run.future).catch_unwind().await;
            // As the RPC server does once the delivery is settled.
            if let Some(uid) = &run.unique_id {
                d.settled(uid, zun_compute_rs::rpc::dedup::Settlement::Acked);
            }
            match r {
                Ok(Ok(_)) => out.ran_ok += 1,
                Ok(Err(e)) => {
                    // Every error can be turned into oslo's failure reply.
                    let _ = e.to_failure();
                    out.ran_err += 1;
                }
                Err(_) => panic!("the method future panicked on {meta:?} {:?}", String::from_utf8_lossy(body)),
            }
        }
    }
}

fn good_show_call(n: usize) -> Vec<u8> {
    let inner = json!({"method": "container_show", "_msg_id": format!("m{n}"), "_reply_q": "reply_q", "_unique_id": format!("good-{n}"),
        "args": {"container": {"zun_object.name": "Container", "zun_object.namespace": "zun", "zun_object.version": "1.44",
            "zun_object.data": {"uuid": "3e6f5f6e-8a5b-4b3c-9d2e-1f0a9b8c7d6e", "status": "Running"}, "zun_object.changes": []}}});
    json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string().into_bytes()
}

#[tokio::test(flavor = "current_thread")]
async fn a_hundred_thousand_malformed_messages_then_good_ones() {
    let seeds = seeds();
    let probe = Arc::new(Probe::default());
    let d = Dispatcher::new(probe.clone());
    let mut rng = StdRng::seed_from_u64(0x7a75_6e2d_7273);
    let mut out = Outcomes::default();
    let started = Instant::now();
    for _ in 0..MESSAGES {
        let (meta, body) = malformed(&mut rng, &seeds);
        // The decoder alone, as the server's first step.
        let _ = std::panic::catch_unwind(|| decode_body(&meta, &body))
            .unwrap_or_else(|_| panic!("decode_body panicked on {:?}", String::from_utf8_lossy(&body)));
        settle_one(&d, &meta, &body, &mut out).await;
    }
    println!("{MESSAGES} malformed messages in {:.1} s: {out:?}", started.elapsed().as_secs_f64());
    assert_eq!(out.rejected + out.duplicate + out.ran_ok + out.ran_err, MESSAGES);
    assert!(out.rejected > MESSAGES / 4, "most damage must be caught by the decoder: {out:?}");
    // Good messages after all that are dispatched and answered.
    let before = probe.calls.load(Ordering::Relaxed);
    let mut good = Outcomes::default();
    for n in 0..10 {
        settle_one(&d, &BodyMeta::oslo_default(), &good_show_call(n), &mut good).await;
    }
    assert_eq!(good.ran_ok, 10, "{good:?}");
    assert_eq!(probe.calls.load(Ordering::Relaxed), before + 10);
}

/// The real manager (executor, operations, SQLite store) under part of the same stream,
/// with Docker unreachable; then a create zun-api would send ends in Error with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_manager_survives_malformed_messages_and_handles_a_create() {
    use zun_compute_rs::admin::Metrics;
    use zun_compute_rs::compute::{Executor, Manager, Services};
    use zun_compute_rs::config::Settings;
    use zun_compute_rs::events::Notifier;
    use zun_compute_rs::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::connect(None, &dir.path().join("zun.sqlite")).await.expect("sqlite store"));
    let docker = common::refused_docker(dir.path());
    let settings = Arc::new(Settings::load::<&std::path::Path>(&[], Vec::new()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let host = "fuzz-node".to_string();
    let svc = Arc::new(Services::new(
        settings,
        store.clone(),
        Arc::new(docker),
        Arc::new(Notifier::disabled(&host)),
        metrics.clone(),
        host.clone(),
    ));
    let executor = Executor::new(8, Some(metrics));
    let manager = Arc::new(Manager::new(svc, executor.clone()));
    let d = Dispatcher::new(manager);

    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(0x0066_6175_6c74);
    let mut out = Outcomes::default();
    for _ in 0..3_000 {
        let (meta, body) = malformed(&mut rng, &seeds);
        let r = tokio::time::timeout(Duration::from_secs(30), settle_one(&d, &meta, &body, &mut out)).await;
        assert!(r.is_ok(), "an operation hung on {:?}", String::from_utf8_lossy(&body));
    }
    println!("3000 malformed messages through the real manager: {out:?}");
    assert!(executor.wait_idle(Instant::now() + Duration::from_secs(30)).await);

    // zun-api's create: the row first, then the cast (from the golden fixture, without
    // Neutron networks or volumes, under a fresh uuid).
    let uuid = uuid::Uuid::new_v4().to_string();
    let (_, body) = &seeds[0];
    let env: Value = serde_json::from_slice(body).unwrap();
    let mut inner: Value = serde_json::from_str(env["oslo.message"].as_str().unwrap()).unwrap();
    inner["args"]["requested_networks"] = json!([]);
    inner["args"]["requested_volumes"] = json!({});
    inner["_unique_id"] = json!(uuid::Uuid::new_v4().simple().to_string());
    let data = &mut inner["args"]["container"]["zun_object.data"];
    data["uuid"] = json!(uuid);
    data["disk"] = json!(0);
    let mut row = Container::from_value(&inner["args"]["container"]).unwrap();
    store.container_save(&mut row).await.expect("the row zun-api writes");
    // The host's compute node, as the worker's inventory pass writes it, so the claim
    // succeeds and the create reaches Docker (a failed claim would end in Error earlier).
    let node = zun_compute_rs::store::ComputeNodeRecord {
        hostname: "fuzz-node".into(),
        mem_total: 1 << 20,
        mem_free: 1 << 20,
        mem_available: 1 << 20,
        cpus: 64,
        disk_total: 1 << 20,
        ..Default::default()
    };
    store.compute_node_upsert(&node).await.expect("compute node");
    let body = json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string().into_bytes();
    let mut good = Outcomes::default();
    settle_one(&d, &BodyMeta::oslo_default(), &body, &mut good).await;
    assert_eq!(good.rejected + good.duplicate, 0, "{good:?}");
    let row = store.container_get(&uuid).await.unwrap().expect("row");
    assert_eq!(row.get_str("status"), Some("Error"), "{:?}", row.data);
    let reason = row.get_str("status_reason").unwrap_or_default();
    assert!(reason.contains("Docker"), "{reason}");
    println!("the good create ended in Error: {reason}");
}
