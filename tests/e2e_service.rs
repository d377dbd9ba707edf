//! The service row as zun-api judges it: up while the worker runs (zun's own
//! `ServiceGroup.service_is_up`), down at once after a clean stop, up again on restart.
mod common;

use common::worker::Worker;
use serde_json::{json, Value};

fn up(zun: &mut common::ZunClient, host: &str) -> Option<bool> {
    let services = zun.cmd("services", json!({})).expect("services");
    services.as_array()?.iter().find(|s| s["host"] == host).and_then(|s| s["up"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_while_running_down_after_sigterm_up_after_restart() {
    let mut w = Worker::start("");
    let mut zun = w.zun();
    let host = w.host.clone();
    assert_eq!(tokio::task::block_in_place(|| up(&mut zun, &host)), Some(true));
    let status = tokio::task::block_in_place(|| w.stop()).expect("stopped");
    assert!(status.success(), "SIGTERM exits 0: {status}");
    assert!(w.log_text().contains("service marked down"), "{}", w.log_text());
    assert_eq!(tokio::task::block_in_place(|| up(&mut zun, &host)), Some(false), "down right after a clean stop");
    tokio::task::block_in_place(|| w.spawn());
    assert_eq!(tokio::task::block_in_place(|| up(&mut zun, &host)), Some(true), "up again after restart");
    let node: Value = zun.cmd("compute_node", json!({"hostname": host})).unwrap();
    assert!(node["cpus"].as_i64().unwrap_or(0) > 0, "{node}");
}
