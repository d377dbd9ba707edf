//! Standalone use, without OpenStack: no `[database] connection` (the embedded SQLite
//! store), and `zun-compute-rs cast ...` acting as a minimal zun-api against the running
//! worker over the real oslo wire.
mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn cli(conf: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zun-compute-rs"))
        .arg("--config-file")
        .arg(conf)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the CLI");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_cli_with_the_embedded_store() {
    let vhost = Vhost::new("zunrs-standalone");
    let dir = tempfile::tempdir().unwrap();
    let host = unique("solo");
    let conf = write_conf(
        dir.path(),
        "zun.conf",
        &format!(
            "[DEFAULT]\nhost = {host}\ntransport_url = {}\nstate_path = {}\nrpc_response_timeout = 60\n[admin]\nlisten =\n",
            vhost.url(),
            dir.path().display()
        ),
    );
    let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_zun-compute-rs"))
        .arg("--config-file")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_path = dir.path().join("worker.log");
    wait_for(Duration::from_secs(60), "the worker to consume", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move { text.contains("zun-compute-rs consuming").then_some(()) }
    })
    .await;
    assert!(dir.path().join("zun-compute-rs.sqlite").exists(), "the embedded store lives in state_path");

    let (ok, out) = tokio::task::block_in_place(|| {
        cli(
            &conf,
            &[
                "cast",
                "create",
                "--image",
                "busybox",
                "--pull-policy",
                "ifnotpresent",
                "--",
                "sh",
                "-c",
                "echo standalone-ok; exec sleep 300",
            ],
        )
    });
    assert!(ok, "{out}");
    assert!(out.contains("status=Running"), "{out}");
    let uuid = out
        .lines()
        .find_map(|l| l.strip_prefix("container ").and_then(|r| r.split_whitespace().next()))
        .expect("a container line")
        .to_string();
    let (ok, out) = tokio::task::block_in_place(|| cli(&conf, &["cast", "show", &uuid]));
    assert!(ok && out.contains("status=Running"), "{out}");
    let (ok, out) = tokio::task::block_in_place(|| cli(&conf, &["cast", "logs", &uuid]));
    assert!(ok && out.contains("standalone-ok"), "{out}");
    let (ok, out) = tokio::task::block_in_place(|| cli(&conf, &["cast", "delete", &uuid]));
    assert!(ok, "{out}");
    let d = zun_compute_rs::docker::DockerClient::connect(&Default::default()).unwrap();
    let name = format!("zun-{uuid}");
    wait_for(Duration::from_secs(60), "the container to be removed", || {
        let d = d.clone();
        let name = name.clone();
        async move { d.inspect(&name).await.err().filter(|e| e.is_not_found()).map(|_| ()) }
    })
    .await;
    let _ = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
    let status = tokio::task::block_in_place(|| worker.wait()).unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status}");
}
