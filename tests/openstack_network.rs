//! Neutron networking through kuryr (issue 10), against the real Keystone, Neutron and
//! kuryr-libnetwork of `scripts/openstack.sh` and the real zun code: rows and actions
//! written by `zun.objects`, casts sent by `zun.compute.rpcapi.API` with a real user
//! token in the context (as zun-api sends them).
mod common;

use common::openstack::{Network, Stack, StackLock};
use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = common::openstack::CREATE_WAIT;
const IMAGE: &str = "127.0.0.1:5000/busybox:latest";

/// The worker's zun.conf sections for the stack (zun-compute's own option names).
fn stack_conf(stack: &Stack) -> String {
    format!(
        "[keystone_auth]\nauth_type = password\nauth_url = {}\nusername = zun\npassword = zun\nproject_name = service\n\
         user_domain_name = Default\nproject_domain_name = Default\n\
         [neutron_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n\
         [network]\ndriver = kuryr\n{}",
        stack.var("OS_AUTH_URL"),
        common::openstack::STACK_DOCKER
    )
}

/// A real user (admin in project admin) and its ids, for the RPC context. Its token is
/// issued again when older than a minute: Keystone's tokens here live 180 s (on purpose),
/// and a test slowed down by a busy machine must not send an expired one, which zun-api,
/// issuing one per request, never does.
struct User {
    stack: Stack,
    token: std::sync::Mutex<(String, std::time::Instant)>,
    project_id: String,
    user_id: String,
}

fn user(stack: &Stack) -> User {
    let t = stack.os_json(&["token", "issue"]);
    User {
        stack: Stack { env: stack.env.clone() },
        token: std::sync::Mutex::new((t["id"].as_str().expect("token").to_string(), std::time::Instant::now())),
        project_id: t["project_id"].as_str().expect("project_id").to_string(),
        user_id: t["user_id"].as_str().expect("user_id").to_string(),
    }
}

impl User {
    fn token(&self) -> String {
        let mut t = self.token.lock().unwrap();
        if t.1.elapsed() > Duration::from_secs(60) {
            *t = (self.stack.issue_token(), std::time::Instant::now());
        }
        t.0.clone()
    }

    fn ctx(&self, mut p: Value) -> Value {
        p["auth_token"] = json!(self.token());
        p["project_id"] = json!(self.project_id);
        p["user_id"] = json!(self.user_id);
        p["roles"] = json!(["admin", "member"]);
        p
    }
}

fn fields(u: &User, uuid: &str, cmd: Value) -> Value {
    json!({
        "uuid": uuid, "name": format!("net-{}", &uuid[..8]), "image": IMAGE, "image_pull_policy": "ifnotpresent",
        "command": cmd, "memory": "64", "cpu": 0.1, "status": "Creating",
        "project_id": u.project_id, "user_id": u.user_id, "interactive": false, "tty": false,
    })
}

/// One entry of `requested_networks` as zun-api's `build_requested_networks` makes it.
fn requested(net: &str, port: &str, preserve: bool) -> Value {
    json!({"network": net, "port": port, "router:external": false, "shared": false, "fixed_ip": "", "preserve_on_delete": preserve})
}

async fn create(zun: &mut ZunClient, u: &User, host: &str, uuid: &str, nets: Value) {
    let p = u.ctx(json!({"fields": fields(u, uuid, json!(["sleep", "600"])), "host": host, "run": true, "requested_networks": nets}));
    zun.cmd_async("rpcapi_create", p).await.expect("rpcapi_create");
}

async fn rpc(zun: &mut ZunClient, u: &User, uuid: &str, method: &str, args: Value, action: &str) {
    let p = u.ctx(json!({"uuid": uuid, "method": method, "args": args, "action": action}));
    zun.cmd_async("rpcapi", p).await.unwrap_or_else(|e| panic!("{method}: {e}"));
}

/// Waits until the row (read through zun.objects in the user's project) satisfies `pred`.
async fn wait_row(zun: &mut ZunClient, u: &User, uuid: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_row_with(zun, u.ctx(json!({"uuid": uuid})), what, pred).await
}

/// The action `action` of the container finished (its message Error or not).
async fn wait_action(zun: &mut ZunClient, u: &User, uuid: &str, action: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let actions = zun.cmd_async("actions", u.ctx(json!({"uuid": uuid}))).await.expect("actions");
        if let Some(a) = actions.as_array().unwrap().iter().find(|a| a["action"] == action && a["finish_time"].is_string()) {
            return a.clone();
        }
        assert!(std::time::Instant::now() < deadline, "action {action} of {uuid} not finished: {actions}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ip -o -4 addr show <dev>` and the MAC of `<dev>` inside the container.
fn iface(uuid: &str, dev: &str) -> (String, String) {
    let name = format!("zun-{uuid}");
    let ip = sh(&["docker", "exec", &name, "ip", "-o", "-4", "addr", "show", dev]);
    let ip = ip.split_whitespace().nth(3).unwrap_or_default().split('/').next().unwrap_or_default().to_string();
    let mac = sh(&["docker", "exec", &name, "cat", &format!("/sys/class/net/{dev}/address")]);
    (ip, mac)
}

/// Starts a stopped stack service again, even when the test fails.
struct Restart<'a>(&'a Stack, &'static str);

impl Drop for Restart<'_> {
    fn drop(&mut self) {
        self.0.start_service(self.1);
    }
}

/// The worker configured for the stack. On drop it stops, then the Placement provider
/// it registered for its host is removed.
struct StackNode<'a> {
    stack: &'a Stack,
    w: Worker,
}

impl std::ops::Deref for StackNode<'_> {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        &self.w
    }
}

impl Drop for StackNode<'_> {
    fn drop(&mut self) {
        // Stopped first, or its next inventory pass would register the provider again.
        // (On a failure the worker's own drop still prints its log.)
        self.w.stop();
        if let Some(rp) = self.stack.provider_uuid(&self.w.host) {
            for consumer in self.stack.provider_consumers(&rp) {
                let _ = self.stack.os(&["resource", "provider", "allocation", "delete", &consumer]);
            }
            if let Err(e) = self.stack.os(&["resource", "provider", "delete", &rp]) {
                eprintln!("cleanup: provider {rp} of {} not deleted: {e}", self.w.host);
            }
        }
    }
}

fn start_worker(stack: &Stack) -> StackNode<'_> {
    StackNode { stack, w: Worker::start(&stack_conf(stack)) }
}

fn port(stack: &Stack, id: &str) -> Value {
    stack.os_json(&["port", "show", id])
}

fn port_exists(stack: &Stack, id: &str) -> bool {
    stack.try_os_json(&["port", "show", id]).is_ok()
}

/// The addresses of `net` in a row: one IPv4 entry, as zun writes it.
fn one_address(row: &Value, net: &str) -> Value {
    let list = row["addresses"][net].as_array().unwrap_or_else(|| panic!("no addresses for {net}: {row}"));
    assert_eq!(list.len(), 1, "{row}");
    let a = list[0].clone();
    let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, ["addr", "port", "preserve_on_delete", "subnet_id", "version"], "{a}");
    assert_eq!(a["version"], 4, "{a}");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_a_neutron_network_pins_ip_and_mac_and_delete_removes_the_port() {
    let stack = Stack::up();
    let _lock = StackLock::shared();
    let u = user(&stack);
    let net = Network::create(&stack, "create");
    let w = start_worker(&stack);
    let mut zun = w.zun();

    // Two containers at once on a network Docker does not know yet: one Docker network.
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    create(&mut zun, &u, &w.host, &a, json!([requested(&net.id, "", false)])).await;
    create(&mut zun, &u, &w.host, &b, json!([requested(&net.id, "", false)])).await;
    let row_a = wait_row(&mut zun, &u, &a, "a Running", settled("Running")).await;
    let row_b = wait_row(&mut zun, &u, &b, "b Running", settled("Running")).await;
    let named = docker().networks_named(&net.id).await.unwrap();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].driver, "kuryr");
    // zun's `network` row of the Docker network it made (ZunNetwork.create).
    let rows = network_rows(&w, &net.id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].ends_with(&format!("{} {}", w.host, named[0].id)), "{rows:?}");

    // The row's addresses as zun writes them; the port as zun makes it.
    let addr = one_address(&row_a, &net.id);
    assert_eq!(addr["subnet_id"], net.subnet_id.as_str());
    assert_eq!(addr["preserve_on_delete"], false);
    let port_id = addr["port"].as_str().unwrap().to_string();
    let p = port(&stack, &port_id);
    assert_eq!(p["device_id"], a.as_str(), "{p}");
    assert_eq!(p["device_owner"], "compute:kuryr", "{p}");
    // zun binds the port to its host; kuryr then rebinds it to its own hostname when it
    // plugs the endpoint, so only "bound" is observable here.
    assert_eq!(p["binding_vif_type"], "bridge", "{p}");
    assert!(p["binding_host_id"].as_str().is_some_and(|h| !h.is_empty()), "{p}");
    assert_eq!(p["project_id"], u.project_id.as_str(), "{p}");

    // Inside: eth0 has the port's IP and MAC; the other container reaches it.
    let (ip, mac) = iface(&a, "eth0");
    assert_eq!(ip, addr["addr"].as_str().unwrap());
    assert_eq!(mac, p["mac_address"].as_str().unwrap());
    let addr_b = one_address(&row_b, &net.id);
    assert_eq!(iface(&b, "eth0").0, addr_b["addr"].as_str().unwrap());
    sh(&["docker", "exec", &format!("zun-{b}"), "ping", "-c", "2", "-W", "3", &ip]);

    // Delete: the Docker container, the row and the port are gone.
    let p = u.ctx(json!({"uuid": a, "host": w.host, "force": true}));
    zun.cmd_async("rpcapi_delete", p).await.unwrap();
    wait_row(&mut zun, &u, &a, "a deleted", Value::is_null).await;
    assert!(docker().inspect(&format!("zun-{a}")).await.unwrap_err().is_not_found());
    assert!(!port_exists(&stack, &port_id), "port {port_id} left behind");
    let p = u.ctx(json!({"uuid": b, "host": w.host, "force": true}));
    zun.cmd_async("rpcapi_delete", p).await.unwrap();
    wait_row(&mut zun, &u, &b, "b deleted", Value::is_null).await;
    assert!(stack.ports_of(&b).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preserved_port_attach_detach_and_security_groups() {
    let stack = Stack::up();
    let _lock = StackLock::shared();
    let u = user(&stack);
    let net = Network::create(&stack, "preserve");
    let net2 = Network::create(&stack, "attach");
    let w = start_worker(&stack);
    let mut zun = w.zun();

    // The user's own port (zun-api sends it with preserve_on_delete = True).
    let own = stack.os_json(&["port", "create", "--network", &net.id, &unique("zunrs-own")]);
    let own_id = own["id"].as_str().unwrap().to_string();
    let uuid = uuid::Uuid::new_v4().to_string();
    create(&mut zun, &u, &w.host, &uuid, json!([requested(&net.id, &own_id, true)])).await;
    let row = wait_row(&mut zun, &u, &uuid, "Running", settled("Running")).await;
    let addr = one_address(&row, &net.id);
    assert_eq!(addr["port"], own_id.as_str());
    assert_eq!(addr["preserve_on_delete"], true);
    let (ip, mac) = iface(&uuid, "eth0");
    assert_eq!(ip, own["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default());
    assert_eq!(mac, own["mac_address"].as_str().unwrap());
    assert_eq!(port(&stack, &own_id)["device_id"], uuid.as_str());

    // network_attach: a second network, a second interface with its port's IP.
    rpc(&mut zun, &u, &uuid, "network_attach", json!([requested(&net2.id, "", false)]), "network_attach").await;
    let act = wait_action(&mut zun, &u, &uuid, "network_attach").await;
    assert!(act["message"].is_null(), "{act}");
    let row =
        wait_row(&mut zun, &u, &uuid, "attached", |r| r["addresses"].get(net2.id.as_str()).is_some() && r["task_state"].is_null()).await;
    let addr2 = one_address(&row, &net2.id);
    let port2 = addr2["port"].as_str().unwrap().to_string();
    assert_eq!(iface(&uuid, "eth1").0, addr2["addr"].as_str().unwrap());
    assert_eq!(port(&stack, &port2)["device_id"], uuid.as_str());

    // Security groups: by name, onto every port of the container, and off again.
    let sg_name = unique("zunrs-sg");
    let sg = stack.os_json(&["security", "group", "create", "--project", &u.project_id, &sg_name]);
    let sg_id = sg["id"].as_str().unwrap().to_string();
    rpc(&mut zun, &u, &uuid, "add_security_group", json!([sg_name]), "add_security_group").await;
    let act = wait_action(&mut zun, &u, &uuid, "add_security_group").await;
    assert!(act["message"].is_null(), "{act}");
    let row = wait_row(&mut zun, &u, &uuid, "group added", settled("Running")).await;
    assert!(row["security_groups"].as_array().unwrap().contains(&json!(sg_name)), "{row}");
    for p in [&own_id, &port2] {
        let groups = port(&stack, p)["security_group_ids"].clone();
        assert!(groups.as_array().unwrap().contains(&json!(sg_id)), "{p}: {groups}");
    }
    rpc(&mut zun, &u, &uuid, "remove_security_group", json!([sg_name]), "remove_security_group").await;
    wait_action(&mut zun, &u, &uuid, "remove_security_group").await;
    let row = wait_row(&mut zun, &u, &uuid, "group removed", |r| {
        r["task_state"].is_null() && !r["security_groups"].as_array().is_some_and(|a| a.contains(&json!(sg_name)))
    })
    .await;
    assert_eq!(row["status"], "Running");
    assert!(!port(&stack, &own_id)["security_group_ids"].as_array().unwrap().contains(&json!(sg_id)));

    // network_detach: the interface, the port and the addresses entry go.
    rpc(&mut zun, &u, &uuid, "network_detach", json!([net2.id]), "network_detach").await;
    wait_row(&mut zun, &u, &uuid, "detached", |r| r["addresses"].get(net2.id.as_str()).is_none() && r["task_state"].is_null()).await;
    assert!(!port_exists(&stack, &port2), "port {port2} left behind");
    let out = Command::new("docker").args(["exec", &format!("zun-{uuid}"), "ip", "link", "show", "eth1"]).output().unwrap();
    assert!(!out.status.success(), "eth1 still there");

    // Delete: the preserved port stays, unbound.
    zun.cmd_async("rpcapi_delete", u.ctx(json!({"uuid": uuid, "host": w.host, "force": true}))).await.unwrap();
    wait_row(&mut zun, &u, &uuid, "deleted", Value::is_null).await;
    let p = port(&stack, &own_id);
    assert_eq!(p["device_id"], "", "{p}");
    assert_eq!(p["device_owner"], "", "{p}");
    let _ = stack.os(&["port", "delete", &own_id]);
    let _ = stack.os(&["security", "group", "delete", &sg_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neutron_down_fails_the_create_with_a_reason_and_leaks_nothing() {
    let stack = Stack::up();
    let _lock = StackLock::exclusive();
    let u = user(&stack);
    let net = Network::create(&stack, "down");
    let w = start_worker(&stack);
    let mut zun = w.zun();

    let restart = Restart(&stack, "neutron");
    stack.stop_service("neutron");
    let uuid = uuid::Uuid::new_v4().to_string();
    create(&mut zun, &u, &w.host, &uuid, json!([requested(&net.id, "", false)])).await;
    let row = wait_row(&mut zun, &u, &uuid, "Error", settled("Error")).await;
    drop(restart);
    let reason = row["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Neutron") && reason.contains("/v2.0/"), "{reason}");
    assert!(row["addresses"].as_object().is_none_or(|o| o.is_empty()), "{row}");
    assert!(docker().networks_named(&net.id).await.unwrap().is_empty(), "a Docker network was left");
    assert!(docker().inspect(&format!("zun-{uuid}")).await.unwrap_err().is_not_found());
    assert!(stack.ports_of(&uuid).is_empty(), "a port was left");
    assert!(w.log_text().contains("zun-compute-rs consuming"));

    // Neutron back: the next create works.
    let again = uuid::Uuid::new_v4().to_string();
    create(&mut zun, &u, &w.host, &again, json!([requested(&net.id, "", false)])).await;
    let row =
        wait_row(&mut zun, &u, &again, "Running after Neutron came back", |r| r["status"] == "Running" || r["status"] == "Error").await;
    assert_eq!(row["status"], "Running", "{row}");
    zun.cmd_async("rpcapi_delete", u.ctx(json!({"uuid": again, "host": w.host, "force": true}))).await.unwrap();
    wait_row(&mut zun, &u, &again, "deleted", Value::is_null).await;
    zun.cmd_async("rpcapi_delete", u.ctx(json!({"uuid": uuid, "host": w.host, "force": true}))).await.unwrap();
    wait_row(&mut zun, &u, &uuid, "deleted", Value::is_null).await;
    assert!(stack.ports_of(&again).is_empty());
}

/// Hostile `exposed_ports` from the wire (zun-api would refuse them; a broker peer may
/// send anything): each create ends in Error with a reason, before any Neutron or Docker
/// call (no security group, no port, no Docker container), and the key is quoted escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_exposed_ports_end_the_create_before_neutron() {
    let stack = Stack::up();
    let _lock = StackLock::shared();
    let u = user(&stack);
    let net = Network::create(&stack, "hostile-expose");
    let w = start_worker(&stack);
    let mut zun = w.zun();
    let long = format!("{}/tcp", "9".repeat(10_000));
    let cases =
        [json!({"0/tcp": {}}), json!({"65536": {}}), json!({"80/sctp": {}}), json!({"80/tcp\n\u{1b}[31mFORGED": {}}), json!({long: {}})];
    for exposed in cases {
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut f = fields(&u, &uuid, json!(["sleep", "600"]));
        f["exposed_ports"] = exposed.clone();
        let p = u.ctx(json!({"fields": f, "host": w.host, "run": true, "requested_networks": [requested(&net.id, "", false)]}));
        zun.cmd_async("rpcapi_create", p).await.expect("rpcapi_create");
        let row = wait_row(&mut zun, &u, &uuid, "Error", settled("Error")).await;
        let reason = row["status_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("invalid"), "{exposed}: {reason}");
        assert!(reason.len() < 200 && !reason.contains('\n') && !reason.contains('\u{1b}'), "{exposed}: {reason:?}");
        assert!(stack.ports_of(&uuid).is_empty(), "{exposed}: a port was made");
        let groups = stack.os_json(&["security", "group", "list", "--project", &u.project_id]);
        assert!(!groups.to_string().contains(&format!("zun-{uuid}")), "{exposed}: a security group was made");
        assert!(docker().inspect(&format!("zun-{uuid}")).await.unwrap_err().is_not_found());
        zun.cmd_async("rpcapi_delete", u.ctx(json!({"uuid": uuid, "host": w.host, "force": true}))).await.unwrap();
        wait_row(&mut zun, &u, &uuid, "deleted", Value::is_null).await;
    }
    assert!(!w.log_text().contains("\u{1b}[31mFORGED"), "a raw escape sequence reached the log");
}

/// The rows of zun's `network` table for a Neutron network, in the worker's database.
fn network_rows(w: &Worker, net: &str) -> Vec<String> {
    let out = Command::new("mariadb")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "-N", "-e"])
        .arg(format!("SELECT CONCAT_WS(' ', uuid, host, network_id) FROM network WHERE neutron_net_id = '{net}'"))
        .arg(&w.db.name)
        .output()
        .expect("mariadb client");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// `network_create` / `network_delete` (zun-api's admin `POST /v1/networks` and
/// `DELETE /v1/networks/<id>`, calls to any compute host), sent by zun's own rpcapi code:
/// the Docker network of the Neutron network made on this host with its `network` row,
/// answered as zun's `ZunNetwork` (read back by zun's object code); a second create gives
/// the same row; the delete removes both. A ZunNetwork naming a Docker network that kuryr
/// did not make is refused and that network left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_create_and_delete_keep_zun_network_rows() {
    let stack = Stack::up();
    let _lock = StackLock::shared();
    let u = user(&stack);
    let net = Network::create(&stack, "netapi");
    let w = start_worker(&stack);
    let mut zun = w.zun();
    let call = |method: &str, kwargs: Value| u.ctx(json!({"server": w.host, "method": method, "kwargs": kwargs, "timeout": 60}));

    let made = zun.cmd_async("call", call("network_create", json!({"neutron_net_id": net.id}))).await.expect("network_create");
    assert_eq!(made["zun_object.name"], "ZunNetwork", "{made}");
    let d = &made["zun_object.data"];
    let named = docker().networks_named(&net.id).await.unwrap();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0].driver, "kuryr");
    assert_eq!((d["name"].as_str(), d["neutron_net_id"].as_str()), (Some(net.id.as_str()), Some(net.id.as_str())), "{made}");
    assert_eq!((d["host"].as_str(), d["network_id"].as_str()), (Some(w.host.as_str()), Some(named[0].id.as_str())), "{made}");
    assert_eq!(d["project_id"], u.project_id.as_str(), "{made}");
    let uuid = d["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(network_rows(&w, &net.id), vec![format!("{uuid} {} {}", w.host, named[0].id)]);
    let again = zun.cmd_async("call", call("network_create", json!({"neutron_net_id": net.id}))).await.expect("network_create again");
    assert_eq!(again["zun_object.data"]["uuid"], uuid.as_str(), "the same row: {again}");

    zun.cmd_async("call", call("network_delete", json!({"network": made}))).await.expect("network_delete");
    assert!(docker().networks_named(&net.id).await.unwrap().is_empty(), "the Docker network is removed");
    assert!(network_rows(&w, &net.id).is_empty(), "the row is removed");

    // A bridge network named like a Neutron id: not kuryr's, never removed.
    let fake = uuid::Uuid::new_v4().to_string();
    sh(&["docker", "network", "create", &fake]);
    let forged = json!({"zun_object.name": "ZunNetwork", "zun_object.namespace": "zun", "zun_object.version": "1.2",
                        "zun_object.data": {"name": fake, "neutron_net_id": fake, "uuid": uuid::Uuid::new_v4().to_string()}});
    let refused = zun.cmd_async("call", call("network_delete", json!({"network": forged}))).await;
    let remains = docker().networks_named(&fake).await.unwrap().len();
    sh(&["docker", "network", "rm", &fake]);
    let err = refused.expect_err("a bridge network is not deleted");
    assert!(err.to_string().contains("is not a kuryr network"), "{err}");
    assert_eq!(remains, 1);
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `openstack.sh up` removes the bridges (`brq<network id[:11]>`) and veth pairs
/// (`tap<port id[:11]>` / `t_c<port id[:11]>`) kuryr left behind for networks and ports
/// Neutron no longer has, and keeps the bridge of a network that exists.
#[test]
fn up_prunes_the_links_of_gone_networks_and_ports_and_keeps_live_ones() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let net = Network::create(&stack, "prune");
    let live = format!("brq{}", &net.id[..11]);
    // ids Neutron never gave out (random, like its own)
    let gone_net = uuid::Uuid::new_v4().to_string();
    let gone_port = uuid::Uuid::new_v4().to_string();
    let (stale_br, stale_tap, stale_peer) =
        (format!("brq{}", &gone_net[..11]), format!("tap{}", &gone_port[..11]), format!("t_c{}", &gone_port[..11]));
    if !link_exists(&live) {
        ip(&["link", "add", &live, "type", "bridge"]);
    }
    ip(&["link", "add", &stale_br, "type", "bridge"]);
    ip(&["link", "add", &stale_tap, "type", "veth", "peer", "name", &stale_peer]);
    let out = Command::new("bash").arg(repo_path("scripts/openstack.sh")).arg("up").output().expect("openstack.sh up");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openstack.sh up: {err}");
    let (br_left, tap_left, peer_left, live_left) =
        (link_exists(&stale_br), link_exists(&stale_tap), link_exists(&stale_peer), link_exists(&live));
    let _ = Command::new("ip").args(["link", "del", &live]).output();
    for l in [&stale_br, &stale_tap] {
        let _ = Command::new("ip").args(["link", "del", l.as_str()]).output();
    }
    assert!(!br_left && !tap_left && !peer_left, "stale links left (bridge {br_left}, tap {tap_left}, peer {peer_left}):\n{err}");
    assert!(live_left, "the live network's bridge {live} was removed:\n{err}");
    assert!(err.contains("bridges/veths removed"), "{err}");
}
