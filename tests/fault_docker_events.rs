//! Changes made to a zun container behind zun's back (killed, started, paused, removed
//! with the Docker CLI) reach its row within seconds through Docker's event stream, while
//! the periodic state sync runs only every 60 s.
mod common;

use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Removes the Docker container when the test ends, passed or not.
struct RemoveOnDrop(String);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// Events should be seen within a second; this leaves room for a loaded machine.
const WITHIN: Duration = Duration::from_secs(5);

fn docker_cli(args: &[&str]) {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn row(zun: &mut ZunClient, uuid: &str) -> Value {
    zun.cmd_async("get", json!({"uuid": uuid})).await.expect("get")
}

/// Waits until the row's status is `status`; returns how long it took.
async fn status_within(zun: &mut ZunClient, uuid: &str, status: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let r = row(zun, uuid).await;
        if r["status"] == status {
            return t.elapsed();
        }
        assert!(t.elapsed() < limit, "row not {status} after {limit:?}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_events_reach_the_row_within_seconds() {
    // The periodic sync runs at start, then only every 60 s: what follows is the events.
    let w = Worker::start("");
    let mut zun = w.zun();
    let uuid = uuid::Uuid::new_v4().to_string();
    let name = format!("zun-{uuid}");
    let _cleanup = RemoveOnDrop(name.clone());
    let fields = json!({
        "uuid": uuid, "name": format!("ev-{}", &uuid[..8]), "image": "busybox:latest", "image_pull_policy": "ifnotpresent",
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"], "status": "Creating",
        "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    });
    zun.cmd_async("rpcapi_create", json!({"fields": fields, "host": w.host, "run": true})).await.unwrap();
    status_within(&mut zun, &uuid, "Running", Duration::from_secs(60)).await;
    let t = Instant::now();
    while !row(&mut zun, &uuid).await["task_state"].is_null() {
        assert!(t.elapsed() < Duration::from_secs(10), "the create's task did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    docker_cli(&["kill", &name]);
    let killed = status_within(&mut zun, &uuid, "Stopped", WITHIN).await;
    docker_cli(&["start", &name]);
    let started = status_within(&mut zun, &uuid, "Running", WITHIN).await;
    docker_cli(&["pause", &name]);
    let paused = status_within(&mut zun, &uuid, "Paused", WITHIN).await;
    docker_cli(&["unpause", &name]);
    let unpaused = status_within(&mut zun, &uuid, "Running", WITHIN).await;
    docker_cli(&["rm", "-f", &name]);
    let removed = status_within(&mut zun, &uuid, "Error", WITHIN).await;
    let r = row(&mut zun, &uuid).await;
    assert!(r["status_reason"].as_str().unwrap_or("").starts_with("No such container"), "{r}");
    println!("seen after: kill {killed:?}, start {started:?}, pause {paused:?}, unpause {unpaused:?}, rm {removed:?}");
    assert!(w.log_text().contains("state sync from a Docker event"));

    zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await.unwrap();
    let t = Instant::now();
    while !row(&mut zun, &uuid).await.is_null() {
        assert!(t.elapsed() < Duration::from_secs(30), "the row was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
