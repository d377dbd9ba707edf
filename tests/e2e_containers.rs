//! The worker binary end to end, driven through the real zun code exactly as zun-api
//! drives zun-compute (rows and actions written by `zun.objects`, casts and calls sent by
//! `zun.compute.rpcapi.API`), against real RabbitMQ, MariaDB and Docker.
mod common;

use common::worker::Worker;
use common::*;
use serde_json::{json, Value};

fn fields(uuid: &str, image: &str, policy: &str, command: Value) -> Value {
    json!({
        "uuid": uuid, "name": format!("e2e-{}", &uuid[..8]), "image": image, "image_pull_policy": policy,
        "command": command, "memory": "64", "cpu": 0.5, "environment": {"K": "V"}, "labels": {"app": "e2e"},
        "status": "Creating", "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    })
}

async fn rpc(zun: &mut ZunClient, uuid: &str, method: &str, args: Value, action: Option<&str>) -> Value {
    let mut p = json!({"uuid": uuid, "method": method, "args": args});
    if let Some(a) = action {
        p["action"] = json!(a);
    }
    zun.cmd_async("rpcapi", p).await.unwrap_or_else(|e| panic!("{method}: {e}"))["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_and_every_operation_through_zun_rpcapi() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    // The heartbeat makes this host "up" for zun-api's check_container_host.
    let services = zun.cmd_async("services", json!({})).await.unwrap();
    assert!(services.as_array().unwrap().iter().any(|s| s["host"] == w.host.as_str() && s["up"] == true), "{services}");

    let uuid = uuid::Uuid::new_v4().to_string();
    let cmd = json!(["sh", "-c", "echo hello-zun; exec sleep 300"]);
    // A real pull from the local registry (policy always).
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&uuid, "127.0.0.1:5000/busybox:latest", "always", cmd), "host": w.host, "run": true}),
    )
    .await
    .unwrap();
    let row = wait_row(&mut zun, &uuid, "Running", settled("Running")).await;
    assert_eq!(row["host"], w.host.as_str());
    assert!(row["container_id"].as_str().is_some_and(|s| s.len() == 64), "{row}");
    assert_eq!(row["image_driver"], "docker");
    assert!(row["started_at"].is_string(), "{row}");
    let inspect = d.inspect(&format!("zun-{uuid}")).await.unwrap();
    assert_eq!(inspect["State"]["Running"], true);
    assert_eq!(inspect["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_eq!(inspect["HostConfig"]["CpuShares"], 512);
    assert!(inspect["Config"]["Env"].as_array().unwrap().contains(&json!("K=V")));

    // Actions and events as zun-compute writes them.
    let finished = |name: &'static str| move |a: &Value| a["action"] == name && a["finish_time"].is_string();
    let actions = wait_actions(&mut zun, &uuid, "the create action finished", |l| l.iter().any(finished("create"))).await;
    let create = actions.iter().find(|a| finished("create")(a)).expect("create action");
    assert!(create["message"].is_null());
    let events: Vec<(&str, &str)> =
        create["events"].as_array().unwrap().iter().map(|e| (e["event"].as_str().unwrap(), e["result"].as_str().unwrap_or(""))).collect();
    assert!(events.contains(&("compute__do_container_create", "Success")), "{events:?}");
    assert!(events.contains(&("compute__do_container_start", "Success")), "{events:?}");
    let node = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    assert!(node["cpu_used"].as_f64().unwrap() >= 0.5, "{node}");

    // show, logs, exec, top, stats
    let shown = rpc(&mut zun, &uuid, "container_show", json!([]), None).await;
    assert_eq!(shown["zun_object.data"]["status"], "Running", "{shown}");
    // zun writes no detail in the first second after start ("Up N seconds" later).
    let detail = &shown["zun_object.data"]["status_detail"];
    assert!(detail.is_null() || detail.as_str().unwrap_or("").starts_with("Up"), "{shown}");
    let logs = rpc(&mut zun, &uuid, "container_logs", json!([true, true, false, "all", null]), None).await;
    assert_eq!(logs, "hello-zun\n");
    let exec = rpc(&mut zun, &uuid, "container_exec", json!(["sh -c 'echo exec-ok; exit 3'", true, false]), None).await;
    assert_eq!(exec["output"], "exec-ok\n");
    assert_eq!(exec["exit_code"], 3);
    let top = rpc(&mut zun, &uuid, "container_top", json!([null]), None).await;
    assert!(top["Titles"].is_array() && top["Processes"].is_array(), "{top}");
    let stats = rpc(&mut zun, &uuid, "container_stats", json!([]), None).await;
    for k in ["CONTAINER", "CPU %", "MEM USAGE(MiB)", "MEM LIMIT(MiB)", "MEM %", "BLOCK I/O(B)", "NET I/O(B)"] {
        assert!(stats.get(k).is_some(), "stats lacks {k}: {stats}");
    }
    // get_archive / put_archive round trip
    let arch = rpc(&mut zun, &uuid, "container_get_archive", json!(["/etc/passwd", true]), None).await;
    assert_eq!(arch[1]["name"], "passwd", "{arch}");
    let put = rpc(&mut zun, &uuid, "container_put_archive", json!(["/tmp", arch[0].clone(), true]), None).await;
    assert_eq!(put, true);
    let exec = rpc(&mut zun, &uuid, "container_exec", json!(["head -1 /tmp/passwd", true, false]), None).await;
    assert!(exec["output"].as_str().unwrap().starts_with("root:"), "{exec}");
    // update (a call): new memory limit in Docker and the row
    let updated = rpc(&mut zun, &uuid, "container_update", json!([{"memory": "128"}]), None).await;
    assert_eq!(updated["zun_object.data"]["memory"], "128");
    assert_eq!(d.inspect(&uuid_name(&uuid)).await.unwrap()["HostConfig"]["Memory"], 128 * 1024 * 1024);

    // The casts, each with its action row, as zun-api sends them.
    rpc(&mut zun, &uuid, "container_pause", json!([]), Some("pause")).await;
    wait_row(&mut zun, &uuid, "Paused", settled("Paused")).await;
    rpc(&mut zun, &uuid, "container_unpause", json!([]), Some("unpause")).await;
    wait_row(&mut zun, &uuid, "Running after unpause", settled("Running")).await;
    rpc(&mut zun, &uuid, "container_stop", json!([1]), Some("stop")).await;
    wait_row(&mut zun, &uuid, "Stopped", settled("Stopped")).await;
    assert_eq!(d.inspect(&uuid_name(&uuid)).await.unwrap()["State"]["Running"], false);
    rpc(&mut zun, &uuid, "container_start", json!([]), Some("start")).await;
    wait_row(&mut zun, &uuid, "Running after start", settled("Running")).await;
    zun.cmd_async(
        "rpcapi",
        json!({"uuid": uuid, "method": "container_reboot", "args": [1], "action": "reboot",
        "set": {"status": "Restarting"}, "save": true}),
    )
    .await
    .unwrap();
    wait_row(&mut zun, &uuid, "Running after reboot", settled("Running")).await;
    rpc(&mut zun, &uuid, "container_kill", json!([null]), Some("kill")).await;
    wait_row(&mut zun, &uuid, "Stopped after kill", settled("Stopped")).await;
    let names = ["pause", "unpause", "stop", "start", "reboot", "kill"];
    let actions = wait_actions(&mut zun, &uuid, "six actions finished", |l| names.iter().all(|n| l.iter().any(finished(n)))).await;
    for a in names {
        let act = actions.iter().find(|x| x["action"] == a).unwrap_or_else(|| panic!("no {a} action"));
        assert_eq!(act["events"][0]["result"], "Success", "{a}: {act}");
    }
    // commit to a local image
    rpc(&mut zun, &uuid, "container_start", json!([]), Some("start")).await;
    wait_row(&mut zun, &uuid, "Running before commit", settled("Running")).await;
    let repo = unique("zunrs-commit");
    let committed = rpc(&mut zun, &uuid, "container_commit", json!([repo, "t1"]), Some("commit")).await;
    assert!(committed["uuid"].as_str().is_some_and(|s| s.starts_with("sha256:")), "{committed}");
    assert!(d.image_exists(&format!("{repo}:t1")).await.unwrap().is_some());
    let _ = d.remove_image(&format!("{repo}:t1")).await;
    wait_row(&mut zun, &uuid, "Running after commit", settled("Running")).await;

    // delete: the row is gone, and so is the Docker container.
    zun.cmd_async("rpcapi_delete", json!({"uuid": uuid, "force": true})).await.unwrap();
    wait_row(&mut zun, &uuid, "row deleted", Value::is_null).await;
    assert!(d.inspect(&uuid_name(&uuid)).await.unwrap_err().is_not_found());
    let node = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    assert_eq!(node["cpu_used"].as_f64().unwrap(), 0.0, "usage released: {node}");
}

fn uuid_name(uuid: &str) -> String {
    format!("zun-{uuid}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_and_over_limit_memory_end_in_error_with_a_reason() {
    let w = Worker::start("");
    let mut zun = w.zun();
    // A missing image in the local registry: Error, Docker's message, host kept.
    let a = uuid::Uuid::new_v4().to_string();
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&a, "127.0.0.1:5000/no-such-image", "always", json!(["true"])), "host": w.host, "run": true}),
    )
    .await
    .unwrap();
    let row = wait_row(&mut zun, &a, "Error", settled("Error")).await;
    let reason = row["status_reason"].as_str().unwrap_or("");
    assert!(reason.contains("not found") || reason.contains("manifest unknown"), "{reason}");
    assert_eq!(row["host"], w.host.as_str());
    let actions =
        wait_actions(&mut zun, &a, "the create action finished", |l| l.first().is_some_and(|x| x["finish_time"].is_string())).await;
    let actions = Value::Array(actions);
    assert_eq!(actions[0]["message"], "Error", "{actions}");
    assert_eq!(actions[0]["events"][0]["result"], "Error", "{actions}");
    assert!(actions[0]["events"][0]["traceback"].as_str().unwrap_or("").contains("not found"), "{actions}");

    // Over the scheduler's memory limit: Error with zun's claim message, host unset.
    let b = uuid::Uuid::new_v4().to_string();
    zun.cmd_async(
        "rpcapi_create",
        json!({"fields": fields(&b, "busybox", "ifnotpresent", json!(["true"])), "host": w.host,
        "run": true, "limits": {"memory": 32, "cpu": 8}}),
    )
    .await
    .unwrap();
    let row = wait_row(&mut zun, &b, "Error", settled("Error")).await;
    let reason = row["status_reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("Insufficient compute resources: Free memory"), "{reason}");
    assert!(row["host"].is_null(), "{row}");
    assert!(docker().inspect(&uuid_name(&b)).await.unwrap_err().is_not_found());
}
