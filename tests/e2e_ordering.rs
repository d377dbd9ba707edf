//! Ordering and concurrency through the real zun rpcapi: interleaved create / stop /
//! start / delete casts for 50 containers, sent back to back, apply in order for each
//! container; 20 concurrent creates of different containers all reach Running.
mod common;

use common::worker::Worker;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn fields(uuid: &str) -> Value {
    json!({"uuid": uuid, "name": format!("ord-{}", &uuid[..8]), "image": "busybox", "image_pull_policy": "ifnotpresent",
        "command": ["sleep", "600"], "memory": "16", "cpu": 0.1, "status": "Creating", "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "labels": {"zunrs-test": "1"}})
}

/// The order in which the worker finished each container's operations (from its log).
fn finished_order(log: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for line in log.lines().filter(|l| l.contains("operation finished")) {
        let field =
            |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).map(|v| v.trim_matches('"').to_string());
        if let (Some(c), Some(m)) = (field("container"), field("method")) {
            out.entry(c).or_default().push(m);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_casts_apply_in_order_per_container() {
    let w = Worker::start("[compute]\nmax_concurrent_operations = 8\n");
    let mut zun = w.zun();
    let uuids: Vec<String> = (0..50).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let host = w.host.clone();
    // Step-major: every container's create, then every stop, every start, every delete.
    for u in &uuids {
        zun.cmd_async("rpcapi_create", json!({"fields": fields(u), "host": host, "run": true})).await.unwrap();
    }
    for (method, args) in [("container_stop", json!([0])), ("container_start", json!([]))] {
        for u in &uuids {
            zun.cmd_async("rpcapi", json!({"uuid": u, "method": method, "args": args, "set": {"host": host}})).await.unwrap();
        }
    }
    for u in &uuids {
        zun.cmd_async("rpcapi_delete", json!({"uuid": u, "host": host, "force": true})).await.unwrap();
    }
    // Wait until every row is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    for u in &uuids {
        loop {
            if zun.cmd_async("get", json!({"uuid": u})).await.unwrap().is_null() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "container {u} not deleted in time");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let log = w.log_text();
    let order = finished_order(&log);
    let sample: Vec<&str> = log.lines().filter(|l| l.contains("operation finished")).take(2).collect();
    assert!(!order.is_empty(), "no 'operation finished' lines parsed; sample: {sample:?}");
    let expected = ["container_create", "container_stop", "container_start", "container_delete"];
    for u in &uuids {
        assert_eq!(order.get(u).map(Vec::as_slice).unwrap_or(&[]), expected, "container {u}");
    }
    let d = zun_compute_rs::docker::DockerClient::connect(&Default::default()).unwrap();
    for u in &uuids {
        assert!(d.inspect(&format!("zun-{u}")).await.unwrap_err().is_not_found(), "zun-{u} left in Docker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_creates_all_reach_running() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let uuids: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for u in &uuids {
        zun.cmd_async("rpcapi_create", json!({"fields": fields(u), "host": w.host, "run": true})).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for u in &uuids {
        loop {
            let row = zun.cmd_async("get", json!({"uuid": u})).await.unwrap();
            if row["status"] == "Running" && row["task_state"].is_null() {
                break;
            }
            assert_ne!(row["status"], "Error", "{row}");
            assert!(std::time::Instant::now() < deadline, "{u} not Running: {row}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // They ran at the same time, not one after another: each container's span from Docker's
    // create to its start, as Docker timestamps them (ns), overlaps others'. A worker that
    // ran one create at a time would have at most one span open at any instant.
    let d = zun_compute_rs::docker::DockerClient::connect(&Default::default()).unwrap();
    let mut edges: Vec<(chrono::DateTime<chrono::FixedOffset>, i32)> = Vec::new();
    for u in &uuids {
        let v = d.inspect(&format!("zun-{u}")).await.unwrap();
        let at = |x: &Value| chrono::DateTime::parse_from_rfc3339(x.as_str().unwrap()).unwrap();
        let (created, started) = (at(&v["Created"]), at(&v["State"]["StartedAt"]));
        assert!(created < started, "zun-{u}: created {created} started {started}");
        edges.push((created, 1));
        edges.push((started, -1));
    }
    edges.sort();
    let (mut open, mut most) = (0, 0);
    for (_, step) in &edges {
        open += step;
        most = most.max(open);
    }
    println!("twenty creates: at most {most} between Docker create and start at once");
    assert!(most >= 2, "the creates never overlapped: they ran one at a time");
    for u in &uuids {
        zun.cmd_async("rpcapi_delete", json!({"uuid": u, "force": true})).await.unwrap();
    }
    for u in &uuids {
        common::wait_for(Duration::from_secs(120), "delete", || {
            let r = zun.cmd("get", json!({"uuid": u}));
            async move { r.ok().filter(Value::is_null).map(|_| ()) }
        })
        .await;
    }
}
