//! Container volumes end to end through the real zun code (rows written by `zun.objects`
//! as zun-api's `_build_requested_volumes` does, the create cast by `zun.compute.rpcapi`),
//! against real RabbitMQ, MariaDB and Docker: local (`type=bind`) volumes here; Cinder
//! volumes in `tests/openstack_volumes.rs`.
mod common;

use base64::Engine;
use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

fn fields(uuid: &str, command: Value) -> Value {
    json!({
        "uuid": uuid, "name": format!("vol-{}", &uuid[..8]), "image": "127.0.0.1:5000/busybox:latest",
        "image_pull_policy": "ifnotpresent", "command": command, "memory": "64", "cpu": 0.1,
        "status": "Creating", "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    })
}

async fn wait_gone(zun: &mut ZunClient, uuid: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while !zun.cmd_async("get", json!({"uuid": uuid})).await.expect("get").is_null() {
        assert!(std::time::Instant::now() < deadline, "container {uuid} was not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A container on `host` with a local volume holding `text` at /etc/app/app.conf, which it
/// prints before sleeping; waits until it runs. Its uuid and row.
async fn run_with_app_conf(zun: &mut ZunClient, host: &str, text: &str) -> (String, Value) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let cmd = json!(["sh", "-c", "cat /etc/app/app.conf; exec sleep 300"]);
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&uuid, cmd), "host": host, "run": true,
               "volumes": [{"type": "bind", "source": b64, "destination": "/etc/app/app.conf"}]}),
    )
    .await
    .unwrap();
    let row = wait_row(zun, &uuid, "Running", settled("Running")).await;
    (uuid, row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_volume_is_bound_into_the_container_and_removed_on_delete() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    let text = "key = value\nsecond line \u{263a}\n";
    let (uuid, row) = run_with_app_conf(&mut zun, &w.host, text).await;
    assert!(row["status_reason"].is_null(), "{row}");

    // The mapping as zun's own objects read it back.
    let maps = zun.cmd_async("volume_mappings", json!({"uuid": uuid})).await.unwrap();
    let maps = maps.as_array().unwrap();
    assert_eq!(maps.len(), 1, "{maps:?}");
    let m = &maps[0];
    assert_eq!(m["container_uuid"], uuid.as_str());
    assert_eq!(m["container_path"], "/etc/app/app.conf");
    assert_eq!(m["volume_provider"], "local");
    assert_eq!(m["project_id"], "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b");
    assert!(m["connection_info"].is_null() && m["host"].is_null(), "{m}");
    let vol_uuid = m["volume_uuid"].as_str().unwrap().to_string();
    let volume_id = m["volume_id"].as_i64().unwrap();

    // zun's mount point, bound as zun's _get_binds builds it.
    let mountpoint = w.dir.path().join("mnt").join(&vol_uuid);
    let file = mountpoint.join(&vol_uuid);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let inspect = d.inspect(&format!("zun-{uuid}")).await.unwrap();
    let binds = inspect["HostConfig"]["Binds"].as_array().cloned().unwrap_or_default();
    assert_eq!(binds, vec![json!(format!("{}:/etc/app/app.conf:rw", file.display()))], "{inspect}");
    // The container sees the contents.
    let logs =
        zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_logs", "args": [true, true, false, "all", null]})).await.unwrap()
            ["result"]
            .clone();
    assert_eq!(logs, text);

    // Delete: mapping and volume rows gone, the mount point removed.
    zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await.unwrap();
    wait_gone(&mut zun, &uuid).await;
    assert!(!mountpoint.exists(), "mount point left: {}", mountpoint.display());
    assert_eq!(zun.cmd_async("volume_exists", json!({"id": volume_id})).await.unwrap(), json!(false));
}

/// A host restart, as zun-compute handles it: with the worker down, the container stops and
/// its local volume file is gone (a tmpfs `volume_dir` after a reboot). The worker started
/// again writes the file back (`[compute] remount_container_volume`, on by default) and,
/// with `resume_container_state`, starts the container recorded Running, which reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rewrites_local_volumes_and_resumes_running_containers() {
    let mut w = Worker::start("[compute]\nresume_container_state = true\n");
    let mut zun = w.zun();
    let d = docker();
    let text = "remounted = yes\n";
    let (uuid, _) = run_with_app_conf(&mut zun, &w.host, text).await;
    let maps = zun.cmd_async("volume_mappings", json!({"uuid": uuid})).await.unwrap();
    let vol_uuid = maps[0]["volume_uuid"].as_str().unwrap().to_string();
    let file = w.dir.path().join("mnt").join(&vol_uuid).join(&vol_uuid);

    // The host goes down: the worker first, then the container; the file is lost.
    let status = tokio::task::block_in_place(|| w.stop()).expect("stopped");
    assert!(status.success(), "{status:?}");
    d.stop(&format!("zun-{uuid}"), Some(1)).await.unwrap();
    std::fs::remove_file(&file).unwrap();

    tokio::task::block_in_place(|| w.spawn());
    // Recovery runs before the worker consumes: the file is back already.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    wait_for(WAIT, "the container started again", || {
        let d = &d;
        let name = format!("zun-{uuid}");
        async move { d.inspect(&name).await.ok().filter(|i| i["State"]["Running"] == true).map(|_| ()) }
    })
    .await;
    let row = wait_row(&mut zun, &uuid, "Running after the restart", settled("Running")).await;
    assert!(row["status_reason"].is_null(), "{row}");
    let log = w.log_text();
    assert!(log.contains("re-attaching volume") && log.contains("resume_container_state"), "{log}");
    // The restarted container read the rewritten file.
    let logs =
        zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_logs", "args": [true, true, false, "all", null]})).await.unwrap()
            ["result"]
            .clone();
    assert!(logs.as_str().is_some_and(|l| l.matches("remounted = yes").count() == 2), "{logs}");

    zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await.unwrap();
    wait_gone(&mut zun, &uuid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_volume_requests_end_the_create_in_error_with_nothing_left() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();

    // Not base64: the attach fails; the row ends in Error, host unset, nothing mounted.
    let uuid = uuid::Uuid::new_v4().to_string();
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&uuid, json!(["sleep", "300"])), "host": w.host, "run": true,
               "volumes": [{"type": "bind", "source": "aGk=", "destination": "/ok"},
                           {"type": "bind", "source": "***not base64***", "destination": "/bad"}]}),
    )
    .await
    .unwrap();
    let row = wait_row(&mut zun, &uuid, "Error", |r| r["status"] == "Error").await;
    assert!(row["status_reason"].as_str().unwrap_or("").contains("base64"), "{row}");
    assert!(row["host"].is_null(), "{row}");
    let maps = zun.cmd_async("volume_mappings", json!({"uuid": uuid})).await.unwrap();
    assert_eq!(maps, json!([]));
    let mnt = w.dir.path().join("mnt");
    let left: Vec<_> = std::fs::read_dir(&mnt).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left under {}: {left:?}", mnt.display());
    assert!(d.inspect(&format!("zun-{uuid}")).await.is_err(), "a Docker container was made");

    // A destination outside the rules never reaches the host or Docker.
    let uuid2 = uuid::Uuid::new_v4().to_string();
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&uuid2, json!(["sleep", "300"])), "host": w.host, "run": true,
               "volumes": [{"type": "bind", "source": "aGk=", "destination": "/data:/etc:rw"}]}),
    )
    .await
    .unwrap();
    let row = wait_row(&mut zun, &uuid2, "Error", |r| r["status"] == "Error").await;
    assert!(row["status_reason"].as_str().unwrap_or("").contains("destination"), "{row}");
    assert!(d.inspect(&format!("zun-{uuid2}")).await.is_err(), "a Docker container was made");
    let _ = zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await;
    let _ = zun.cmd_async("rpcapi_delete", json!({"uuid": uuid2, "force": true})).await;
}
