//! Capsules (zun's `capsule_driver = docker`): a sandbox holding the capsule's network,
//! init containers run to completion in order, then containers in the sandbox's network
//! and IPC namespaces; delete in reverse order, the sandbox last.
//!
//! - `capsule_through_zun_api_with_kuryr`: the real tier. `openstack capsule create --file`
//!   through zun-api 18 (scheduled to this test's worker by an availability zone of its
//!   own), a Neutron network of the test's own through kuryr; the two containers share one
//!   network namespace (one reaches the other's httpd on 127.0.0.1); `capsule delete`
//!   removes the members, the sandbox, the Neutron port and the Placement allocation.
//! - `capsule_through_rpcapi_standalone`: the same flow through zun's own objects and rpcapi
//!   (as zun-api builds them) on a worker without OpenStack.
//! - `hostile_capsules_end_in_error_with_nothing_left`: a message that reorders the init
//!   containers, a capsule with too many containers, a member name with control
//!   characters, an init container that fails: each capsule ends Error with a clear
//!   reason, its host unset, nothing left in Docker.
mod common;

use common::openstack::{poll, Network, Stack, StackLock, StackWorker};
use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = common::openstack::CREATE_WAIT;
const BUSYBOX: &str = "127.0.0.1:5000/busybox:latest";
const HTTPD: &str = "mkdir -p /www && echo hello-capsule > /www/index.html && trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait";
const SLEEPER: &str = "trap 'exit 0' TERM; sleep 2147483647 & wait";

/// Docker containers `zun-<uuid>` removed on drop (a failed test leaves nothing running).
struct DockerNames(Vec<String>);

impl Drop for DockerNames {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("docker").args(["rm", "-f", &format!("zun-{n}")]).output();
        }
    }
}

fn docker_inspect(uuid: &str) -> Option<Value> {
    let out = Command::new("docker").args(["inspect", &format!("zun-{uuid}")]).output().expect("docker");
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout).ok()?.as_array()?.first().cloned()
}

/// `docker exec zun-<uuid> wget -q -O - http://127.0.0.1:8080/index.html` (busybox wget crashes on `-T` and on `/` here), retried until it answers.
fn fetch_over_localhost(uuid: &str) -> String {
    poll(Duration::from_secs(30), "the httpd member answering on 127.0.0.1:8080 from the other member", || {
        let out = Command::new("docker")
            .args(["exec", &format!("zun-{uuid}"), "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    })
}

/// The members share the sandbox's network and IPC namespaces.
fn assert_joined(sandbox_id: &str, member: &str) {
    let i = docker_inspect(member).unwrap_or_else(|| panic!("member {member} not in Docker"));
    let want = format!("container:{sandbox_id}");
    assert_eq!(i["HostConfig"]["NetworkMode"], want.as_str(), "{member}");
    assert_eq!(i["HostConfig"]["IpcMode"], want.as_str(), "{member}");
}

// ------------------------------------------------------------------ through zun-api

/// zun-api must run with the tier's `sandbox_image` (scripts/openstack.sh writes it into
/// zun.conf when it starts zun-api). A zun-api started by an older script lacks it: restart
/// it once, holding the stack lock exclusively.
fn ensure_zun_api_has_sandbox_image() {
    let conf = "/var/tmp/zun-rs/openstack/etc/zun/zun.conf";
    let has = || std::fs::read_to_string(conf).is_ok_and(|t| t.lines().any(|l| l.starts_with("sandbox_image")));
    if has() {
        return;
    }
    let _x = StackLock::exclusive();
    if has() {
        return;
    }
    let stack = Stack::up();
    eprintln!("[capsules] zun-api runs without sandbox_image: restarting it");
    stack.stop_service("zun-api");
    stack.start_service("zun-api");
    assert!(has(), "zun.conf has no sandbox_image after the restart");
}

fn sql_members(stack: &Stack, capsule: &str) -> Vec<Vec<String>> {
    stack.sql(&format!(
        "SELECT uuid, container_type, status, IFNULL(container_id, ''), IFNULL(status_reason, '') FROM container \
         WHERE capsule_id = (SELECT id FROM container WHERE uuid = '{capsule}') ORDER BY id"
    ))
}

/// A Keystone project and member user of the test's own, removed on drop. zun-api puts a
/// capsule on the oldest network of the caller's project (a capsule template has no
/// networks: zun 18's schema refuses `nets`), so the capsule runs in a project whose only
/// network is the test's.
struct Tenant<'a> {
    admin: &'a Stack,
    project: String,
    user: String,
}

impl<'a> Tenant<'a> {
    fn create(admin: &'a Stack, name: &str, password: &str) -> (Self, Stack) {
        let project = admin.os_json(&["project", "create", "--domain", "Default", name])["id"].as_str().expect("project id").to_string();
        let user = admin.os_json(&["user", "create", "--domain", "Default", "--password", password, "--project", &project, name])["id"]
            .as_str()
            .expect("user id")
            .to_string();
        admin.os_ok(&["role", "add", "--user", &user, "--project", &project, "member"]);
        let mut env = admin.env.clone();
        for (k, v) in [("OS_USERNAME", name), ("OS_PASSWORD", password), ("OS_PROJECT_NAME", name)] {
            env.insert(k.into(), v.into());
        }
        (Tenant { admin, project, user }, Stack { env })
    }
}

impl Drop for Tenant<'_> {
    fn drop(&mut self) {
        let _ = self.admin.os(&["user", "delete", &self.user]);
        let _ = self.admin.os(&["project", "delete", &self.project]);
    }
}

#[test]
fn capsule_through_zun_api_with_kuryr() {
    ensure_zun_api_has_sandbox_image();
    let _lock = StackLock::shared();
    let admin = Stack::up();
    let tenant_name = unique("zunrs-caps-tenant");
    let (_tenant, stack) = Tenant::create(&admin, &tenant_name, &uuid::Uuid::new_v4().simple().to_string());
    let net = Network::create(&stack, "caps");
    let az = unique("zunrs-az-caps");
    let w = StackWorker::start_with(&admin, "caps", &format!("default_availability_zone = {az}"), "");
    let name = unique("zunrs-caps");
    let template = json!({
        "kind": "capsule",
        "capsuleVersion": "beta",
        "metadata": {"name": name, "labels": {"zunrs-test": name}},
        "availabilityZone": az,
        "spec": {
            "initContainers": [{"image": BUSYBOX, "command": ["sh", "-c", "echo init-done"]}],
            "containers": [
                {"image": BUSYBOX, "command": ["sh", "-c", HTTPD], "resources": {"requests": {"cpu": 0.1, "memory": 64}},
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                {"image": BUSYBOX, "command": ["sh", "-c", SLEEPER], "resources": {"requests": {"cpu": 0.1, "memory": 64}}},
            ],
        },
    });
    let file = w.dir.path().join("capsule.json");
    std::fs::write(&file, template.to_string()).unwrap();
    let t0 = Instant::now();
    let created = stack.os_json(&["capsule", "create", "--file", file.to_str().unwrap()]);
    let uuid = created["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {created}")).to_string();
    let mut names = DockerNames(vec![uuid.clone()]);

    // Running, through zun-api's own view.
    let shown = poll(WAIT, "the capsule Running", || {
        let v = stack.try_os_json(&["capsule", "show", &uuid]).ok()?;
        if v["status"] == "Error" {
            panic!("capsule Error: {}\n--- worker log:\n{}", v["status_reason"], w.log_tail(60));
        }
        (v["status"] == "Running").then_some(v)
    });
    eprintln!("[capsules] capsule Running {:.1} s after `capsule create`", t0.elapsed().as_secs_f64());
    let rows = sql_members(&admin, &uuid);
    names.0.extend(rows.iter().map(|r| r[0].clone()));
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0][1].as_str(), rows[0][2].as_str()), ("3", "Stopped"), "the init container ran to completion: {rows:?}");
    for r in &rows[1..] {
        assert_eq!((r[1].as_str(), r[2].as_str()), ("2", "Running"), "{rows:?}");
    }
    let host = admin.sql(&format!("SELECT host FROM container WHERE uuid = '{uuid}'"));
    assert_eq!(host[0][0], w.host, "scheduled to this test's worker");
    let sandbox = docker_inspect(&uuid).expect("the sandbox zun-<capsule uuid>");
    assert_eq!(sandbox["State"]["Running"], true);
    assert_eq!(sandbox["Config"]["Image"], "127.0.0.1:5000/zunrs-pause:3.9");
    let sandbox_id = sandbox["Id"].as_str().unwrap().to_string();
    assert_eq!(sandbox["HostConfig"]["NetworkMode"], net.id.as_str(), "the sandbox is on the kuryr network");
    for r in &rows {
        assert_joined(&sandbox_id, &r[0]);
    }
    // One network namespace: the sleeper reaches the httpd on localhost.
    assert_eq!(fetch_over_localhost(&rows[2][0]).trim(), "hello-capsule");
    // The capsule's Neutron port (device_id = the capsule's uuid), and its address in zun.
    let ports = admin.ports_of(&uuid);
    assert_eq!(ports.first().and_then(|p| p["Fixed IP Addresses"][0]["subnet_id"].as_str()), Some(net.subnet_id.as_str()), "{ports:?}");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert!(shown["addresses"].to_string().contains(ports[0]["Fixed IP Addresses"][0]["ip_address"].as_str().unwrap_or("-")), "{shown}");
    let rp = admin.provider_uuid(&w.host).expect("provider");
    assert!(admin.provider_consumers(&rp).contains(&uuid), "the capsule's allocation");
    // The member's `ports`: the capsule's security group zun-<capsule uuid>, on its port.
    let groups = admin.sql(&format!("SELECT security_groups FROM container WHERE uuid = '{uuid}'"));
    let groups: Vec<String> = serde_json::from_str(&groups[0][0]).unwrap_or_else(|e| panic!("security_groups {groups:?}: {e}"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    let sg_id = groups[0].clone();
    assert_eq!(admin.os_json(&["security", "group", "show", &sg_id])["name"], format!("zun-{uuid}").as_str());
    let rules = admin.os_json(&["security", "group", "rule", "list", "--ingress", "--protocol", "tcp", &sg_id]);
    assert!(rules.as_array().unwrap().iter().any(|r| r["Port Range"] == "8080:8080"), "{rules}");
    let port_id = ports[0]["ID"].as_str().unwrap().to_string();
    assert_eq!(admin.os_json(&["port", "show", &port_id])["security_group_ids"], json!([sg_id]));

    // Delete: members, then the sandbox, its port and allocation, the rows.
    let t1 = Instant::now();
    stack.os_ok(&["capsule", "delete", &uuid]);
    poll(WAIT, "the capsule gone from zun-api", || match stack.os(&["capsule", "show", &uuid]) {
        Err(e) if e.contains("not found") || e.contains("Not Found") || e.contains("404") => Some(()),
        _ => None,
    });
    eprintln!("[capsules] capsule deleted {:.1} s after `capsule delete`", t1.elapsed().as_secs_f64());
    for n in &names.0 {
        assert!(docker_inspect(n).is_none(), "zun-{n} still in Docker");
    }
    assert!(sql_members(&admin, &uuid).is_empty());
    assert_eq!(admin.sql(&format!("SELECT COUNT(*) FROM container WHERE uuid IN ('{}')", names.0.join("','")))[0][0], "0");
    poll(Duration::from_secs(30), "the capsule's port released", || admin.ports_of(&uuid).is_empty().then_some(()));
    assert!(!admin.provider_consumers(&rp).contains(&uuid), "allocation freed");
    assert!(admin.try_os_json(&["security", "group", "show", &sg_id]).is_err(), "the capsule's security group deleted");
}

/// A capsule template with a Cinder volume (`size`, `autoRemove`) mounted by both of its
/// containers, through zun-api 18 and the real Cinder: zun-api creates the volume, the worker
/// waits for it, attaches it once (the second member shares the attachment), both members
/// see the same files; the delete detaches it and Cinder deletes it.
#[test]
fn capsule_with_a_cinder_volume_through_zun_api() {
    ensure_zun_api_has_sandbox_image();
    let _lock = StackLock::shared();
    let admin = Stack::up();
    let tenant_name = unique("zunrs-capv-tenant");
    let (_tenant, stack) = Tenant::create(&admin, &tenant_name, &uuid::Uuid::new_v4().simple().to_string());
    let _net = Network::create(&stack, "capv");
    let az = unique("zunrs-az-capv");
    let w = StackWorker::start_with(
        &admin,
        "capv",
        &format!("default_availability_zone = {az}"),
        "[cinder_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n",
    );
    let name = unique("zunrs-capv");
    let mounts = json!([{"name": "data", "mountPath": "/data"}]);
    let template = json!({
        "kind": "capsule",
        "capsuleVersion": "beta",
        "metadata": {"name": name},
        "availabilityZone": az,
        "spec": {
            "containers": [
                {"image": BUSYBOX, "command": ["sh", "-c", format!("echo from-the-writer > /data/f && sync; {SLEEPER}")],
                 "volumeMounts": mounts},
                {"image": BUSYBOX, "command": ["sh", "-c", SLEEPER], "volumeMounts": mounts},
            ],
            "volumes": [{"name": "data", "cinder": {"size": 1, "autoRemove": true}}],
        },
    });
    let file = w.dir.path().join("capsule.json");
    std::fs::write(&file, template.to_string()).unwrap();
    let created = stack.os_json(&["capsule", "create", "--file", file.to_str().unwrap()]);
    let uuid = created["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {created}")).to_string();
    let mut names = DockerNames(vec![uuid.clone()]);
    poll(WAIT, "the capsule Running", || {
        let v = stack.try_os_json(&["capsule", "show", &uuid]).ok()?;
        if v["status"] == "Error" {
            panic!("capsule Error: {}\n--- worker log:\n{}", v["status_reason"], w.log_tail(60));
        }
        (v["status"] == "Running").then_some(())
    });
    let rows = sql_members(&admin, &uuid);
    names.0.extend(rows.iter().map(|r| r[0].clone()));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let vol = admin.sql(&format!(
        "SELECT DISTINCT v.cinder_volume_id FROM volume_mapping m JOIN volume v ON v.id = m.volume_id \
         WHERE m.container_uuid IN ('{}', '{}')",
        rows[0][0], rows[1][0]
    ));
    assert_eq!(vol.len(), 1, "one volume for both members: {vol:?}");
    let vol = vol[0][0].clone();
    assert_eq!(admin.os_json(&["volume", "show", &vol])["status"], "in-use");
    let reader = poll(Duration::from_secs(30), "the reader sees the writer's file", || {
        let out = Command::new("docker").args(["exec", &format!("zun-{}", rows[1][0]), "cat", "/data/f"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).to_string())
    });
    assert_eq!(reader.trim(), "from-the-writer");

    stack.os_ok(&["capsule", "delete", &uuid]);
    poll(WAIT, "the capsule gone from zun-api", || match stack.os(&["capsule", "show", &uuid]) {
        Err(e) if e.contains("not found") || e.contains("Not Found") || e.contains("404") => Some(()),
        _ => None,
    });
    for n in &names.0 {
        assert!(docker_inspect(n).is_none(), "zun-{n} still in Docker");
    }
    poll(Duration::from_secs(60), "the autoRemove volume deleted from Cinder", || {
        admin.try_os_json(&["volume", "show", &vol]).is_err().then_some(())
    });
    assert!(admin.sql(&format!("SELECT id FROM volume WHERE cinder_volume_id = '{vol}'")).is_empty(), "volume row removed");
}

// ------------------------------------------------------------------ through zun's rpcapi

fn member(cmd: &str, name: &str) -> Value {
    json!({"uuid": uuid::Uuid::new_v4().to_string(), "name": name, "image": BUSYBOX, "image_pull_policy": "ifnotpresent",
           "command": ["sh", "-c", cmd], "interactive": false, "tty": false})
}

fn capsule_fields() -> Value {
    json!({"uuid": uuid::Uuid::new_v4().to_string(), "name": unique("zunrs-caps"), "image": BUSYBOX,
           "image_pull_policy": "ifnotpresent", "command": ["sh", "-c", SLEEPER], "memory": "0",
           "restart_policy": {"MaximumRetryCount": "0", "Name": "always"}, "interactive": false, "tty": false})
}

async fn wait_capsule(zun: &mut ZunClient, uuid: &str, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = zun.cmd_async("capsule_get", json!({"uuid": uuid})).await.expect("capsule_get");
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capsule_through_rpcapi_standalone() {
    // No stack service is used, but the fault tests must not restart RabbitMQ or dockerd meanwhile.
    let _lock = StackLock::shared();
    let w = Worker::start("");
    let mut zun = w.zun();
    let init = member("echo init-done", "capsule-x-init");
    let web = member(HTTPD, "capsule-x-web");
    let client = member(SLEEPER, "capsule-x-client");
    let fields = capsule_fields();
    let uuid = fields["uuid"].as_str().unwrap().to_string();
    let mut names = DockerNames(vec![uuid.clone()]);
    for m in [&init, &web, &client] {
        names.0.push(m["uuid"].as_str().unwrap().to_string());
    }
    let made = zun
        .cmd_async(
            "capsule_create",
            json!({"fields": fields, "host": w.host, "init_containers": [init], "containers": [web, client],
                   // zun-api leaves the lists unset; the same members in the same order pass
                   "list_init": [0], "list_containers": [0, 1]}),
        )
        .await
        .unwrap();
    let id = made["id"].clone();
    let c = wait_capsule(&mut zun, &uuid, |v| (v["status"] == "Running" && v["task_state"].is_null()) || v["status"] == "Error", "Running")
        .await;
    assert_eq!(c["status"], "Running", "{c}\n{}", w.log_text());
    assert_eq!(c["host"], w.host.as_str());
    assert!(c["task_state"].is_null(), "{c}");
    let members = zun.cmd_async("capsule_members", json!({"id": id})).await.unwrap();
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!((members[0]["type"].as_str(), members[0]["status"].as_str()), (Some("CapsuleInitContainer"), Some("Stopped")));
    assert!(members[1..].iter().all(|m| m["status"] == "Running" && m["container_id"].is_string()), "{members:?}");
    let sandbox_id = c["container_id"].as_str().unwrap();
    for m in members {
        assert_joined(sandbox_id, m["uuid"].as_str().unwrap());
    }
    assert_eq!(fetch_over_localhost(client["uuid"].as_str().unwrap()).trim(), "hello-capsule");
    // The init container ran to completion before the containers started.
    let init_end = docker_inspect(init["uuid"].as_str().unwrap()).unwrap()["State"]["FinishedAt"].as_str().unwrap().to_string();
    let web_start = docker_inspect(web["uuid"].as_str().unwrap()).unwrap()["State"]["StartedAt"].as_str().unwrap().to_string();
    assert!(init_end <= web_start, "init finished {init_end}, web started {web_start}");

    zun.cmd_async("capsule_delete", json!({"uuid": uuid})).await.unwrap();
    wait_capsule(&mut zun, &uuid, Value::is_null, "the capsule row gone").await;
    for n in &names.0 {
        assert!(docker_inspect(n).is_none(), "zun-{n} still in Docker");
    }
    let left = zun.cmd_async("capsule_members", json!({"id": id})).await.unwrap();
    assert_eq!(left, json!([]), "member rows go with the capsule");
}

/// Capsule volumes as zun-api's capsule path sends them (mappings that name only the volume
/// row): one volume shared by both containers and one of the web container alone; each
/// member gets its binds; the delete removes the mount points and the rows. A mapping for a
/// container that is not in the capsule fails the capsule with nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capsule_volumes_through_rpcapi_standalone() {
    use base64::Engine;
    let _lock = StackLock::shared();
    let w = Worker::start("");
    let mut zun = w.zun();
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let web = member(SLEEPER, "capsule-v-web");
    let client = member(SLEEPER, "capsule-v-client");
    let fields = capsule_fields();
    let uuid = fields["uuid"].as_str().unwrap().to_string();
    let mut names = DockerNames(vec![uuid.clone()]);
    for m in [&web, &client] {
        names.0.push(m["uuid"].as_str().unwrap().to_string());
    }
    let volumes = json!([
        {"contents": b64("shared = yes\n"), "mounts": [["containers", 0, "/etc/shared.conf"], ["containers", 1, "/etc/shared.conf"]]},
        {"contents": b64("web only\n"), "mounts": [["containers", 0, "/etc/web.conf"]]},
    ]);
    let made = zun
        .cmd_async("capsule_create", json!({"fields": fields, "host": w.host, "containers": [web, client], "volumes": volumes}))
        .await
        .unwrap();
    let id = made["id"].clone();
    let c = wait_capsule(&mut zun, &uuid, |v| (v["status"] == "Running" && v["task_state"].is_null()) || v["status"] == "Error", "Running")
        .await;
    assert_eq!(c["status"], "Running", "{c}\n{}", w.log_text());
    let cat = |member: &Value, path: &str| {
        let out =
            Command::new("docker").args(["exec", &format!("zun-{}", member["uuid"].as_str().unwrap()), "cat", path]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(cat(&web, "/etc/shared.conf"), "shared = yes\n");
    assert_eq!(cat(&client, "/etc/shared.conf"), "shared = yes\n");
    assert_eq!(cat(&web, "/etc/web.conf"), "web only\n");
    assert_eq!(cat(&client, "/etc/web.conf"), "", "the client has no web.conf");
    let maps = zun.cmd_async("volume_mappings", json!({"uuid": web["uuid"]})).await.unwrap();
    assert_eq!(maps.as_array().map(Vec::len), Some(2), "{maps}");
    assert!(maps.as_array().unwrap().iter().all(|m| m["volume_provider"] == "local"), "{maps}");
    let mnt = w.dir.path().join("mnt");
    let listed = |d: &std::path::Path| std::fs::read_dir(d).map(|r| r.flatten().count()).unwrap_or(0);
    assert_eq!(listed(&mnt), 2, "two mount points under {}", mnt.display());

    zun.cmd_async("capsule_delete", json!({"uuid": uuid})).await.unwrap();
    wait_capsule(&mut zun, &uuid, Value::is_null, "the capsule row gone").await;
    assert_eq!(listed(&mnt), 0, "mount points removed");
    for m in [&web, &client] {
        assert_eq!(zun.cmd_async("volume_mappings", json!({"uuid": m["uuid"]})).await.unwrap(), json!([]));
    }
    assert_eq!(zun.cmd_async("capsule_members", json!({"id": id})).await.unwrap(), json!([]));

    // A mapping for a container that is not a member: refused before anything is made.
    let stranger = uuid::Uuid::new_v4().to_string();
    let fields = capsule_fields();
    let bad = fields["uuid"].as_str().unwrap().to_string();
    names.0.push(bad.clone());
    let vm = json!({"zun_object.name": "VolumeMapping", "zun_object.namespace": "zun", "zun_object.version": "1.5",
                    "zun_object.data": {"container_path": "/x", "volume_id": 1}});
    zun.cmd_async(
        "capsule_create",
        json!({"fields": fields, "host": w.host, "containers": [member(SLEEPER, "capsule-v-x")], "requested_volumes": {stranger: [vm]}}),
    )
    .await
    .unwrap();
    let c = wait_capsule(&mut zun, &bad, |v| v["status"] == "Error", "Error").await;
    assert!(c["status_reason"].as_str().is_some_and(|r| r.contains("not a container of the capsule")), "{c}");
    assert!(c["host"].is_null(), "{c}");
    assert!(docker_inspect(&bad).is_none(), "no sandbox was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_capsules_end_in_error_with_nothing_left() {
    // No stack service is used, but the fault tests must not restart RabbitMQ or dockerd meanwhile.
    let _lock = StackLock::shared();
    let w = Worker::start("");
    let mut zun = w.zun();
    let mut names = DockerNames(Vec::new());
    struct Case {
        what: &'static str,
        params: Value,
        reason: &'static str,
    }
    let init_a = member("exit 0", "capsule-h-a");
    let init_b = member("exit 0", "capsule-h-b");
    let many: Vec<Value> = (0..33).map(|i| member(SLEEPER, &format!("capsule-h-{i}"))).collect();
    let cases = [
        Case {
            what: "init containers listed in another order than their rows",
            params: json!({"init_containers": [init_a, init_b], "containers": [member(SLEEPER, "capsule-h-c")], "list_init": [1, 0]}),
            reason: "differ from its rows (members or order)",
        },
        Case { what: "too many containers", params: json!({"containers": many}), reason: "at most 32" },
        Case {
            what: "a member name with control characters",
            params: json!({"containers": [member(SLEEPER, "evil\u{1b}[31mname\nFAKE LOG LINE")]}),
            reason: "control characters",
        },
        Case {
            what: "an init container that fails",
            params: json!({"init_containers": [member("exit 3", "capsule-h-fail")], "containers": [member(SLEEPER, "capsule-h-d")]}),
            reason: "exited with code 3",
        },
        Case {
            what: "no container at all",
            params: json!({"init_containers": [member("exit 0", "capsule-h-e")]}),
            reason: "one container at least",
        },
    ];
    for case in cases {
        let fields = capsule_fields();
        let uuid = fields["uuid"].as_str().unwrap().to_string();
        names.0.push(uuid.clone());
        let mut p = case.params.clone();
        p["fields"] = fields;
        p["host"] = json!(w.host);
        let made = zun.cmd_async("capsule_create", p).await.unwrap_or_else(|e| panic!("{}: {e}", case.what));
        for key in ["init_containers", "containers"] {
            names.0.extend(made[key].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()));
        }
        let c =
            wait_capsule(&mut zun, &uuid, |v| v["status"] == "Error" || (v["status"] == "Running" && v["task_state"].is_null()), "Error")
                .await;
        assert_eq!(c["status"], "Error", "{}: {c}", case.what);
        let reason = c["status_reason"].as_str().unwrap_or_default();
        assert!(reason.contains(case.reason), "{}: reason {reason:?}", case.what);
        assert!(!reason.contains('\n') && !reason.contains('\u{1b}'), "{}: reason {reason:?}", case.what);
        assert!(c["host"].is_null(), "{}: {c}", case.what);
        assert!(c["container_id"].is_null(), "{}: {c}", case.what);
        for n in &names.0 {
            assert!(docker_inspect(n).is_none(), "{}: zun-{n} left in Docker", case.what);
        }
    }
    // The worker is still serving: a good capsule after the bad ones runs.
    let fields = capsule_fields();
    let uuid = fields["uuid"].as_str().unwrap().to_string();
    let good = member(SLEEPER, "capsule-h-good");
    names.0.push(uuid.clone());
    names.0.push(good["uuid"].as_str().unwrap().to_string());
    zun.cmd_async("capsule_create", json!({"fields": fields, "host": w.host, "containers": [good]})).await.unwrap();
    let c = wait_capsule(&mut zun, &uuid, |v| (v["status"] == "Running" && v["task_state"].is_null()) || v["status"] == "Error", "Running")
        .await;
    assert_eq!(c["status"], "Running", "{c}");
    zun.cmd_async("capsule_delete", json!({"uuid": uuid})).await.unwrap();
    wait_capsule(&mut zun, &uuid, Value::is_null, "the capsule row gone").await;
}
