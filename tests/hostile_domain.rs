//! A hostile or careless peer on the broker, against the domain: the real worker binary,
//! RabbitMQ, MariaDB and Docker, driven through zun's own rpcapi (and raw oslo casts and
//! calls where zun-api would never send such a message). Each test has its own host,
//! vhost, database and Docker names, and removes what it made.
//!
//! Issue 12: forged `container_id`s (3), wrapping arithmetic (5), usage released that was
//! never claimed (6), rows left in Creating (9), `container_commit` outside the executor
//! (12), the state sync's writes (13), and other hostile arguments.
mod common;

use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// Removes a Docker container (or, with `image`, an image tag) when the test ends.
struct Cleanup {
    what: &'static str,
    name: String,
}
impl Drop for Cleanup {
    fn drop(&mut self) {
        let args: Vec<&str> = if self.what == "image" { vec!["rmi", &self.name] } else { vec!["rm", "-f", &self.name] };
        let _ = Command::new("docker").args(args).output();
    }
}
fn rm_container(name: &str) -> Cleanup {
    Cleanup { what: "container", name: name.to_string() }
}

fn docker_cli(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs SQL in the worker's own database (MariaDB, root over TCP).
fn sql(w: &Worker, text: &str) -> String {
    let mut child = Command::new("mysql")
        .args(["-h127.0.0.1", "-uroot", "-N", "-B", &w.db.name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mysql client");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mysql {text}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fields(uuid: &str, image: &str, policy: &str) -> Value {
    json!({
        "uuid": uuid, "name": format!("hostile-{}", &uuid[..8.min(uuid.len())]), "image": image, "image_pull_policy": policy,
        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"], "memory": "64", "cpu": 0.5,
        "labels": {"app": "zunrs-hostile"}, "status": "Creating",
        "project_id": "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b", "user_id": "9f8e7d6c5b4a49382716a5b4c3d2e1f0",
        "interactive": false, "tty": false,
    })
}

async fn row(zun: &mut ZunClient, uuid: &str) -> Value {
    zun.cmd_async("get", json!({"uuid": uuid})).await.expect("get")
}

/// Creates a running container through zun's rpcapi and waits for it.
async fn running(w: &Worker, zun: &mut ZunClient, image: &str) -> (String, String, Cleanup) {
    running_with(w, zun, fields(&uuid::Uuid::new_v4().to_string(), image, "ifnotpresent")).await
}

async fn running_with(w: &Worker, zun: &mut ZunClient, fields: Value) -> (String, String, Cleanup) {
    let uuid = fields["uuid"].as_str().unwrap().to_string();
    let guard = rm_container(&format!("zun-{uuid}"));
    zun.cmd_async("rpcapi_create", json!({"fields": fields, "host": w.host, "run": true})).await.unwrap();
    let r = wait_row(zun, &uuid, "Running", settled("Running")).await;
    let id = r["container_id"].as_str().expect("container_id").to_string();
    (uuid, id, guard)
}

async fn node(zun: &mut ZunClient, w: &Worker) -> (i64, f64) {
    let n = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    (n["mem_used"].as_i64().unwrap(), n["cpu_used"].as_f64().unwrap())
}

/// A Container primitive zun-api would never send (a raw oslo message carries it).
fn primitive(data: Value) -> Value {
    json!({"zun_object.name": "Container", "zun_object.namespace": "zun", "zun_object.version": "1.44",
           "zun_object.data": data, "zun_object.changes": []})
}

// ---- 3: container_id from the wire ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_container_ids_never_reach_another_container_or_endpoint() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    let (uuid, real_id, _c) = running(&w, &mut zun, "busybox:latest").await;

    // What a forged id must never touch: a running container that is not zun's, and an
    // image tag.
    let victim = unique("zunrs-hostile-victim");
    let _v = rm_container(&victim);
    let victim_id = docker_cli(&["run", "-d", "--name", &victim, "--label", "zunrs-test=hostile", "busybox:latest", "sleep", "600"]);
    let tag = format!("{}:keep", unique("zunrs-hostile-tag"));
    docker_cli(&["tag", "busybox:latest", &tag]);
    let _t = Cleanup { what: "image", name: tag.clone() };

    let forged = [
        victim_id.clone(),
        victim_id[..12].to_string(),
        format!("../images/{tag}"),
        format!("{real_id}/../../images/{tag}"),
        format!("{real_id}?force=1"),
        "../../version".to_string(),
        victim.clone(),
        "zun-someone-else".to_string(),
    ];
    for f in &forged {
        for (method, args) in [
            ("container_logs", json!([true, true, false, "all", null])),
            ("container_top", json!([null])),
            ("container_stats", json!([])),
            ("container_show", json!([])),
            ("container_exec", json!(["true", true, false])),
            ("container_get_archive", json!(["/etc/hostname", true])),
        ] {
            let r = zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": method, "args": args, "set": {"container_id": f}})).await;
            let e = r.expect_err(&format!("{method} with container_id {f:?} was answered"));
            assert_eq!(e["class"], "Invalid", "{method} {f:?}: {e}");
            assert!(e["message"].as_str().unwrap_or("").contains("container_id"), "{method} {f:?}: {e}");
        }
    }
    // Casts: each refused (its action ends in Error), nothing else moves.
    for (i, f) in forged.iter().enumerate() {
        for (method, args, action) in [
            ("container_kill", json!([null]), "kill"),
            ("container_stop", json!([0]), "stop"),
            ("container_delete", json!([true]), "delete"),
        ] {
            let req = format!("req-{}-{i}-{action}", uuid::Uuid::new_v4());
            zun.cmd_async(
                "rpcapi",
                json!({"uuid": uuid, "method": method, "args": args, "action": action, "request_id": req,
                "set": {"container_id": f}}),
            )
            .await
            .unwrap();
            let deadline = Instant::now() + WAIT;
            loop {
                let actions = zun.cmd_async("actions", json!({"uuid": uuid})).await.unwrap();
                let a = actions.as_array().unwrap().iter().find(|a| a["request_id"] == req.as_str()).cloned();
                if let Some(a) = a.filter(|a| a["finish_time"].is_string()) {
                    assert_eq!(a["message"], "Error", "{method} {f:?}: {a}");
                    break;
                }
                assert!(Instant::now() < deadline, "{method} {f:?} never finished: {actions}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(d.inspect(&victim_id).await.unwrap()["State"]["Running"], true, "the victim was touched");
    assert!(d.image_exists(&tag).await.unwrap().is_some(), "the image tag was removed");
    assert_eq!(d.inspect(&real_id).await.unwrap()["State"]["Running"], true);
    let r = row(&mut zun, &uuid).await;
    assert_eq!(r["status"], "Running", "{r}");
    assert_eq!(r["container_id"], real_id.as_str());
    // exec_resize takes an exec id straight from the wire.
    let e = zun
        .cmd_async(
            "call",
            json!({"server": w.host, "method": "container_exec_resize",
            "kwargs": {"exec_id": format!("../containers/{victim_id}/kill"), "height": 10, "width": 10}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["class"], "Invalid", "{e}");
    assert_eq!(d.inspect(&victim_id).await.unwrap()["State"]["Running"], true, "the victim was killed");
    // The real id still works.
    let logs = zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_top", "args": [null]})).await.unwrap();
    assert!(logs["result"]["Processes"].is_array(), "{logs}");
}

// ---- 5: arithmetic on wire values -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_resources_end_in_error_and_never_touch_the_usage() {
    let mut w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    let mut cleanup = Vec::new();
    let mut refused = Vec::new();
    for (what, patch) in [
        ("memory 2^44 MB", json!({"memory": "17592186044416"})),
        ("memory 2^53 MB", json!({"memory": "9007199254740993"})),
        ("negative memory", json!({"memory": "-64"})),
        ("negative cpu", json!({"cpu": -4.0})),
        ("huge cpu", json!({"cpu": 1.0e9})),
    ] {
        let uuid = uuid::Uuid::new_v4().to_string();
        cleanup.push(rm_container(&format!("zun-{uuid}")));
        refused.push(uuid.clone());
        let mut f = fields(&uuid, "busybox:latest", "ifnotpresent");
        for (k, v) in patch.as_object().unwrap() {
            f[k] = v.clone();
        }
        zun.cmd_async("rpcapi_create", json!({"fields": f, "host": w.host, "run": true})).await.unwrap();
        let r = wait_row(&mut zun, &uuid, &format!("{what}: Error"), settled("Error")).await;
        let reason = r["status_reason"].as_str().unwrap_or("");
        assert!(reason.starts_with("Invalid"), "{what}: {reason}");
        assert!(r["host"].is_null(), "{what}: {r}");
        assert!(d.inspect(&format!("zun-{uuid}")).await.unwrap_err().is_not_found(), "{what}: a Docker container was made");
        assert_eq!(node(&mut zun, &w).await, (0, 0.0), "{what}: usage moved");
    }
    // A resize out of range is refused and changes nothing.
    let (uuid, id, _c) = running(&w, &mut zun, "busybox:latest").await;
    assert_eq!(node(&mut zun, &w).await, (64, 0.5));
    for patch in [json!({"memory": "17592186044416"}), json!({"cpu": -1.0}), json!({"memory": "-1"})] {
        let e = zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_update", "args": [patch]})).await.unwrap_err();
        assert_eq!(e["class"], "Invalid", "{patch}: {e}");
    }
    assert_eq!(d.inspect(&id).await.unwrap()["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_eq!(d.inspect(&id).await.unwrap()["HostConfig"]["CpuShares"], 512);
    assert_eq!(node(&mut zun, &w).await, (64, 0.5));
    assert_eq!(row(&mut zun, &uuid).await["memory"], "64");
    // The next inventory audit (it runs at start) still works, even with a row of this
    // host that holds an absurd figure (one written before these checks existed).
    sql(&w, &format!("UPDATE container SET host = '{}' WHERE uuid = '{}';", w.host, refused[0]));
    w.stop();
    w.spawn();
    let log = w.log_text();
    assert!(!log.contains("Out of range"), "the audit failed");
    assert!(!log.contains("inventory failed"), "the audit failed");
    // The absurd memory is not counted; its (valid) cpu is.
    assert_eq!(node(&mut zun, &w).await, (64, 1.0));
}

// ---- 6: release exactly what was claimed, once ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_released_exactly_once_and_only_when_claimed() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let (a, _a_id, _ca) = running(&w, &mut zun, "busybox:latest").await;
    assert_eq!(node(&mut zun, &w).await, (64, 0.5));

    // The claim write fails (MariaDB refuses every increase of mem_used), then the
    // create fails too: nothing was claimed, so nothing may be released.
    sql(
        &w,
        "DELIMITER //\nCREATE TRIGGER zunrs_refuse_claims BEFORE UPDATE ON compute_node FOR EACH ROW \
         BEGIN IF NEW.mem_used > OLD.mem_used THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'test: claims refused'; END IF; END//\n\
         DELIMITER ;\n",
    );
    let missing = format!("127.0.0.1:5000/{}", unique("zunrs-no-such-image"));
    let b = uuid::Uuid::new_v4().to_string();
    let _cb = rm_container(&format!("zun-{b}"));
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&b, &missing, "always"), "host": w.host, "run": true})).await.unwrap();
    let r = wait_row(&mut zun, &b, "B in Error", settled("Error")).await;
    assert!(r["status_reason"].as_str().unwrap_or("").contains("claim"), "{r}");
    assert!(r["host"].is_null(), "{r}");
    assert_eq!(node(&mut zun, &w).await, (64, 0.5), "usage released that was never claimed");
    sql(&w, "DROP TRIGGER zunrs_refuse_claims;");

    // A create that fails after its claim and keeps its host keeps its usage (the row
    // still counts in the audit); its delete releases it, once.
    let c = uuid::Uuid::new_v4().to_string();
    let _cc = rm_container(&format!("zun-{c}"));
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&c, &missing, "always"), "host": w.host, "run": true})).await.unwrap();
    let r = wait_row(&mut zun, &c, "C in Error", settled("Error")).await;
    assert_eq!(r["host"], w.host.as_str(), "{r}");
    assert_eq!(node(&mut zun, &w).await, (128, 1.0));
    zun.cmd_async("rpcapi_delete", json!({"uuid": c, "force": true})).await.unwrap();
    wait_row(&mut zun, &c, "C deleted", Value::is_null).await;
    assert_eq!(node(&mut zun, &w).await, (64, 0.5), "released twice");
    // A delete releases what the row holds, not what the message says.
    zun.cmd_async("rpcapi_delete", json!({"uuid": a, "force": true})).await.unwrap();
    wait_row(&mut zun, &a, "A deleted", Value::is_null).await;
    assert_eq!(node(&mut zun, &w).await, (0, 0.0));
}

// ---- 9: every create that reaches the worker ends ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_that_reaches_the_worker_ends_with_a_reason() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    let nobody = unique("nobody-listens");
    let create_kwargs = |container: Option<Value>| {
        let mut k = json!({"limits": {}, "requested_networks": [], "requested_volumes": {}, "run": true, "pci_requests": null});
        if let Some(c) = container {
            k["container"] = c;
        }
        k
    };
    // zun-api inserts the row and its create action; the cast itself goes nowhere (a host
    // nobody serves), and a malformed one reaches the worker instead.
    let mut rows = Vec::new();
    for case in ["bad primitive", "no container argument"] {
        let uuid = uuid::Uuid::new_v4().to_string();
        let made = zun
            .cmd_async("rpcapi_create", json!({"fields": fields(&uuid, "busybox:latest", "ifnotpresent"), "host": nobody}))
            .await
            .unwrap();
        let request_id = made["request_id"].as_str().unwrap().to_string();
        let container = (case == "bad primitive")
            .then(|| primitive(json!({"uuid": uuid, "image": "busybox:latest", "cpu": [1], "labels": "not a dict"})));
        zun.cmd_async(
            "cast",
            json!({"server": w.host, "method": "container_create", "request_id": request_id,
            "kwargs": create_kwargs(container)}),
        )
        .await
        .unwrap();
        rows.push((case, uuid));
    }
    // A uuid that is a path, and an image name with `..`: refused, the row still ends.
    let path_uuid = "../../images/busybox".to_string();
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&path_uuid, "busybox:latest", "ifnotpresent"), "host": w.host, "run": true}))
        .await
        .unwrap();
    rows.push(("uuid with a path", path_uuid));
    let dotted = uuid::Uuid::new_v4().to_string();
    let _cd = rm_container(&format!("zun-{dotted}"));
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&dotted, "../../containers/json", "always"), "host": w.host, "run": true}))
        .await
        .unwrap();
    rows.push(("image with ..", dotted));
    for (case, uuid) in &rows {
        let r = wait_row(&mut zun, uuid, &format!("{case}: Error"), settled("Error")).await;
        assert!(r["status_reason"].as_str().is_some_and(|s| !s.is_empty()), "{case}: {r}");
    }
    assert!(d.image_exists("busybox:latest").await.unwrap().is_some());

    // A primitive that claims Running is created *and started*.
    let uuid = uuid::Uuid::new_v4().to_string();
    let _c = rm_container(&format!("zun-{uuid}"));
    let mut f = fields(&uuid, "busybox:latest", "ifnotpresent");
    f["status"] = json!("Running");
    zun.cmd_async("rpcapi_create", json!({"fields": f, "host": w.host, "run": true})).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = row(&mut zun, &uuid).await;
        let started = d.inspect(&format!("zun-{uuid}")).await.ok().is_some_and(|i| i["State"]["Running"] == true);
        if r["status"] == "Running" && r["task_state"].is_null() && started {
            break;
        }
        assert!(Instant::now() < deadline, "a create claiming Running was never started: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- 12: container_commit in the executor -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_waits_for_the_container_lock_and_never_leaves_it_paused() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    // A stop that takes 3 s: the command ignores SIGTERM, Docker kills it after `t`.
    let mut f = fields(&uuid::Uuid::new_v4().to_string(), "busybox:latest", "ifnotpresent");
    f["command"] = json!(["sh", "-c", "trap '' TERM; sleep 600 & wait"]);
    let (uuid, id, _c) = running_with(&w, &mut zun, f).await;
    let stop_req = format!("req-{}", uuid::Uuid::new_v4());
    let repo = unique("zunrs-hostile-commit");
    let _img = Cleanup { what: "image", name: format!("{repo}:t1") };
    zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_stop", "args": [3], "action": "stop", "request_id": stop_req}))
        .await
        .unwrap();
    // Sent right after the stop: it must run after it, as zun's lock orders them.
    let _ = zun.cmd_async("rpcapi", json!({"uuid": uuid, "method": "container_commit", "args": [repo, "t1"], "action": "commit"})).await;
    let actions = zun.cmd_async("actions", json!({"uuid": uuid})).await.unwrap();
    let stop = actions.as_array().unwrap().iter().find(|a| a["request_id"] == stop_req.as_str()).cloned().unwrap();
    assert!(stop["finish_time"].is_string(), "the commit answered while the stop still ran: {actions}");
    assert_eq!(d.inspect(&id).await.unwrap()["State"]["Paused"], false);

    // An error between the pause and the unpause (the row vanished) still unpauses.
    docker_cli(&["start", &id]);
    let u = uuid.clone();
    sql(
        &w,
        &format!(
            "DELETE FROM container_actions_events WHERE action_id IN (SELECT id FROM container_actions WHERE container_uuid = '{u}');\n\
             DELETE FROM container_actions WHERE container_uuid = '{u}';\nDELETE FROM container WHERE uuid = '{u}';\n"
        ),
    );
    let r = zun
        .cmd_async("call", json!({"server": w.host, "method": "container_commit",
            "kwargs": {"container": primitive(json!({"uuid": uuid, "container_id": id, "status": "Running"})), "repository": repo, "tag": "t2"}}))
        .await;
    assert!(r.is_err(), "{r:?}");
    let _ = Command::new("docker").args(["rmi", &format!("{repo}:t2")]).output();
    let state = d.inspect(&id).await.unwrap()["State"].clone();
    assert_eq!(state["Paused"], false, "left paused: {state}");
}

// ---- 13: the state sync ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sync_corrects_through_the_executor_and_writes_only_changes() {
    let w = Worker::start_with("periodic_interval_max = 1", "");
    let mut zun = w.zun();
    let (uuid, _id, _c) = running(&w, &mut zun, "busybox:latest").await;
    // A row that says something Docker contradicts, with a reason that no longer holds.
    sql(&w, &format!("UPDATE container SET status = 'Error', status_reason = 'stale: testing' WHERE uuid = '{uuid}';"));
    let r = wait_row(&mut zun, &uuid, "the sync to correct the row", |r| r["status"] == "Running").await;
    assert!(r["status_reason"].is_null(), "stale status_reason kept: {r}");
    // In line with Docker: later passes write nothing.
    let before = sql(&w, &format!("SELECT updated_at FROM container WHERE uuid = '{uuid}';"));
    let report = |s: &Value, host: &str| {
        s.as_array().unwrap().iter().find(|x| x["host"] == host).map(|x| x["report_count"].as_i64().unwrap()).unwrap_or(0)
    };
    let start = report(&zun.cmd_async("services", json!({})).await.unwrap(), &w.host);
    let deadline = Instant::now() + WAIT;
    while report(&zun.cmd_async("services", json!({})).await.unwrap(), &w.host) < start + 3 {
        assert!(Instant::now() < deadline, "no periodic passes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = sql(&w, &format!("SELECT updated_at FROM container WHERE uuid = '{uuid}';"));
    assert_eq!(before, after, "the sync rewrote a row that was in line with Docker");
    let log = w.log_text();
    assert!(log.lines().filter(|l| l.contains("state sync")).all(|l| !l.contains("INFO")), "state sync logs at INFO");
    assert!(log.lines().any(|l| l.contains("state sync") && l.contains("DEBUG")), "the correction was not logged");
}

// ---- other hostile arguments ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_arguments_get_clear_answers_and_cost_nothing_else() {
    let w = Worker::start("");
    let mut zun = w.zun();
    let d = docker();
    let (uuid, id, _c) = running(&w, &mut zun, "busybox:latest").await;
    let call = |method: &str, args: Value| json!({"uuid": uuid, "method": method, "args": args});
    // Huge, negative and non-numeric tails.
    for tail in [json!("99999999999999999999999999999"), json!(-5), json!("all; rm -rf /"), json!(1e300)] {
        let r = zun.cmd_async("rpcapi", call("container_logs", json!([true, true, false, tail, null]))).await;
        assert!(r.is_ok() || r.as_ref().unwrap_err()["class"].is_string(), "tail {tail}: {r:?}");
    }
    // Commands with NUL and control bytes, an empty command.
    for cmd in ["echo a\u{0}b", "echo \u{1b}[2J", "", "sh -c 'echo unterminated"] {
        let r = zun.cmd_async("rpcapi", call("container_exec", json!([cmd, true, false]))).await;
        assert!(r.is_ok() || r.as_ref().unwrap_err()["class"].is_string(), "exec {cmd:?}: {r:?}");
    }
    // Archive paths that climb: Docker resolves them inside the container.
    let r = zun.cmd_async("rpcapi", call("container_get_archive", json!(["/../../../../etc/hostname", true]))).await.unwrap();
    assert_eq!(r["result"][1]["name"], "hostname", "{r}");
    let r = zun.cmd_async("rpcapi", call("container_put_archive", json!(["/../../tmp", "bm90IGEgdGFy", true]))).await;
    assert!(r.is_err(), "{r:?}");
    // Absurd TTY sizes.
    for (h, wd) in [(-1, -1), (i64::MAX, i64::MAX), (0, 0)] {
        let r = zun.cmd_async("rpcapi", call("container_resize", json!([h, wd]))).await;
        assert!(r.is_ok() || r.as_ref().unwrap_err()["class"].is_string(), "resize {h}x{wd}: {r:?}");
    }
    // Environment keys with `=` or NUL and odd labels: the create ends, never in Creating.
    let mut ended = Vec::new();
    for (what, env, labels) in [
        ("env key with =", json!({"A=B": "v"}), json!({})),
        ("env with NUL", json!({"K\u{0}": "v\u{0}"}), json!({})),
        ("label with NUL", json!({}), json!({"k\u{0}": "\u{0}"})),
    ] {
        let u = uuid::Uuid::new_v4().to_string();
        ended.push((what, u.clone(), rm_container(&format!("zun-{u}"))));
        let mut f = fields(&u, "busybox:latest", "ifnotpresent");
        f["environment"] = env;
        f["labels"] = labels;
        zun.cmd_async("rpcapi_create", json!({"fields": f, "host": w.host, "run": true})).await.unwrap();
    }
    for (what, u, _) in &ended {
        let r =
            wait_row(&mut zun, u, what, |r| matches!(r["status"].as_str(), Some("Running" | "Error")) && r["task_state"].is_null()).await;
        if r["status"] == "Error" {
            assert!(r["status_reason"].as_str().is_some_and(|s| !s.is_empty()), "{what}: {r}");
        }
    }
    // Still serving, the container untouched.
    let r = zun.cmd_async("rpcapi", call("container_show", json!([]))).await.unwrap();
    assert_eq!(r["result"]["zun_object.data"]["status"], "Running", "{r}");
    assert_eq!(d.inspect(&id).await.unwrap()["State"]["Running"], true);
}
