//! Issue 10 end to end: the real zun-api 18.0.0 (keystone auth, its scheduler on real
//! Placement, kuryr networking on real Neutron) with zun-compute-rs as its compute host,
//! driven by the real `openstack appcontainer` CLI. No mocks: `scripts/openstack.sh` runs
//! Keystone, Placement, Neutron, kuryr-libnetwork and zun-api on 127.0.0.1.
//!
//! Each test has its own worker (unique host), its own Neutron networks and pins its
//! containers to its host (`--host`, zun's requested destination). See
//! tests/common/openstack.rs.
mod common;

use common::openstack::*;
use serde_json::Value;
use std::time::Duration;

const RUNNING: Duration = common::openstack::CREATE_WAIT;
const IMAGE: &[&str] = &["--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"];

fn docker_exists(name: &str) -> bool {
    std::process::Command::new("docker").args(["inspect", name]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// The container's address and Neutron port on network `net`: the address as zun-api
/// shows it (`networks` and `addresses`, the `addresses` the worker wrote, one IPv4
/// address per network here), the port from Neutron (device_id = the container).
/// (`appcontainer network list` would say it at once, but python-zunclient 5.5.0's
/// formatter is refused by osc-lib: "Invalid formatter provided".)
fn address_on(stack: &Stack, uuid: &str, net: &str) -> Option<(String, String)> {
    let show = stack.os_json(&["appcontainer", "show", uuid]);
    let nets: Vec<&str> = show["networks"].as_str()?.split(", ").collect();
    let addrs: Vec<&str> = show["addresses"].as_str()?.split(", ").collect();
    if nets.len() != addrs.len() {
        panic!("one address per network expected: {show}");
    }
    let ip = nets.iter().zip(&addrs).find(|(n, _)| **n == net)?.1.to_string();
    let ports = stack.os_json(&["port", "list", "--device-id", uuid, "--network", net]);
    let port = ports.as_array()?.first()?["ID"].as_str()?.to_string();
    Some((ip, port))
}

fn address(stack: &Stack, uuid: &str, net: &str) -> (String, String) {
    address_on(stack, uuid, net)
        .unwrap_or_else(|| panic!("no address of {uuid} on {net}: {}", stack.os_json(&["appcontainer", "show", uuid])))
}

fn port_ip_mac(port: &Value) -> (String, String) {
    let ip = port["Fixed IP Addresses"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|f| f["ip_address"].as_str())
        .unwrap_or_else(|| panic!("no fixed ip in {port}"))
        .to_string();
    (ip, port["MAC Address"].as_str().unwrap_or_default().to_string())
}

/// run → Running; show lists the Neutron port's address; the interface inside has the
/// port's IP and MAC; a second container on the network reaches the first; Placement
/// shows the provider with inventories matching compute_node and one allocation per live
/// container; delete removes the Docker container, the row, the port and the allocation.
#[test]
fn run_network_placement_and_delete() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "run", "");
    let net = Network::create(&stack, "run");

    let rp = stack.provider_uuid(&w.host).expect("provider");
    // inventories match the compute_node row
    let node = stack.sql(&format!("SELECT uuid, rp_uuid, cpus, mem_total, disk_total FROM compute_node WHERE hostname = '{}'", w.host));
    let node = node.first().expect("compute_node row");
    assert_eq!(node[1], rp, "compute_node.rp_uuid is the provider's uuid");
    let inv = stack.os_json(&["resource", "provider", "inventory", "list", &rp]);
    let total = |rc: &str| -> i64 {
        inv.as_array()
            .unwrap()
            .iter()
            .find(|i| i["resource_class"] == rc)
            .and_then(|i| i["total"].as_i64())
            .unwrap_or_else(|| panic!("no {rc} in {inv}"))
    };
    assert_eq!(total("VCPU").to_string(), node[2], "VCPU total");
    assert_eq!(total("MEMORY_MB").to_string(), node[3], "MEMORY_MB total");
    // zun reports the whole filesystem to Placement and keeps `reserve_disk_for_image`
    // (0.2) of it out of compute_node.disk_total (zun/container/driver.py)
    let disk = total("DISK_GB");
    assert_eq!((disk - (disk as f64 * 0.2) as i64).to_string(), node[4], "DISK_GB total {disk} vs disk_total");

    let a = w.run(&net, &format!("{}-a", net.name), IMAGE);
    let b = w.run(&net, &format!("{}-b", net.name), IMAGE);
    let show_a = w.wait_status(&a, "Running", RUNNING);
    let show_b = w.wait_status(&b, "Running", RUNNING);
    assert_eq!(show_a["host"], w.host.as_str());

    let (ip_a, port_id_a) = address(&stack, &a, &net.id);
    assert!(show_a["addresses"].as_str().unwrap_or_default().contains(&ip_a), "show lists {ip_a}: {show_a}");
    let ports = stack.ports_of(&a);
    assert_eq!(ports.len(), 1, "one Neutron port for {a}: {ports:?}");
    let (port_ip, port_mac) = port_ip_mac(&ports[0]);
    assert_eq!(port_ip, ip_a, "show lists the port's address");
    if !port_id_a.is_empty() {
        assert_eq!(ports[0]["ID"], port_id_a.as_str());
    }
    let mac_inside = w.exec(&a, &["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac_inside.trim(), port_mac, "MAC inside the container");
    let addr_inside = w.exec(&a, &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr_inside.contains(&format!("{ip_a}/")), "IP inside the container: {addr_inside}");

    // b reaches a
    let (ip_b, _) = address(&stack, &b, &net.id);
    assert_eq!(show_b["status"], "Running");
    assert_ne!(ip_a, ip_b);
    let ping = w.exec(&b, &["ping", "-c", "1", "-W", "5", &ip_a]);
    assert!(ping.contains("1 packets received"), "b pings a: {ping}");

    // one allocation per live container, on this host's provider
    let mut consumers = stack.provider_consumers(&rp);
    consumers.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(consumers, want, "allocations on {rp}");

    // delete: Docker container, row, port, allocation
    stack.os_ok(&["appcontainer", "delete", "--stop", &a]);
    w.wait_gone(&a, RUNNING);
    assert!(!docker_exists(&format!("zun-{a}")), "Docker container of {a} removed");
    assert!(stack.ports_of(&a).is_empty(), "port of {a} removed");
    poll(Duration::from_secs(30), "allocation of the deleted container freed", || {
        (!stack.provider_consumers(&rp).contains(&a)).then_some(())
    });
    assert_eq!(stack.provider_consumers(&rp), vec![b.clone()]);
    stack.os_ok(&["appcontainer", "delete", "--stop", &b]);
    w.wait_gone(&b, RUNNING);
    assert!(stack.ports_of(&b).is_empty(), "port of {b} removed");
    poll(Duration::from_secs(30), "no allocation left on the provider", || stack.provider_consumers(&rp).is_empty().then_some(()));
}

/// exec, logs, stop, start, restart, pause, unpause, kill, update (`appcontainer set`) through the CLI.
#[test]
fn lifecycle_through_the_cli() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "life", "");
    let net = Network::create(&stack, "life");
    let c = w.run(&net, &net.name, &["--image-pull-policy", "ifnotpresent", "busybox", "sh", "-c", "echo hello-zunrs; exec sleep 3600"]);
    w.wait_status(&c, "Running", RUNNING);

    let out = w.exec(&c, &["echo", "from-exec"]);
    assert_eq!(out.trim(), "from-exec");
    let logs = stack.os_ok(&["appcontainer", "logs", &c]);
    assert!(logs.contains("hello-zunrs"), "logs: {logs}");

    stack.os_ok(&["appcontainer", "stop", &c]);
    w.wait_status(&c, "Stopped", RUNNING);
    stack.os_ok(&["appcontainer", "start", &c]);
    w.wait_status(&c, "Running", RUNNING);
    let started_at = || {
        let out =
            std::process::Command::new("docker").args(["inspect", "-f", "{{.State.StartedAt}}", &format!("zun-{c}")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let started = started_at();
    stack.os_ok(&["appcontainer", "restart", &c]);
    poll(RUNNING, "restart starts the Docker container again", || {
        (w.show(&c)["status"] == "Running" && started_at() != started).then_some(())
    });
    stack.os_ok(&["appcontainer", "pause", &c]);
    w.wait_status(&c, "Paused", RUNNING);
    stack.os_ok(&["appcontainer", "unpause", &c]);
    w.wait_status(&c, "Running", RUNNING);

    let updated = stack.os_json(&["appcontainer", "set", "--memory", "256", "--cpu", "0.5", &c]);
    assert_eq!(updated["memory"].as_str().map(|m| m.trim_end_matches('M').to_string()), Some("256".into()), "{updated}");
    let mem = std::process::Command::new("docker").args(["inspect", "-f", "{{.HostConfig.Memory}}", &format!("zun-{c}")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&mem.stdout).trim(), (256u64 * 1024 * 1024).to_string(), "Docker's memory limit");

    stack.os_ok(&["appcontainer", "kill", "--signal", "SIGKILL", &c]);
    w.wait_status(&c, "Stopped", RUNNING);
    stack.os_ok(&["appcontainer", "delete", &c]);
    w.wait_gone(&c, RUNNING);
    assert!(stack.ports_of(&c).is_empty(), "port removed");
}

/// network attach/detach and add/remove security group through the CLI.
#[test]
fn network_attach_detach_and_security_groups() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "netops", "");
    let net = Network::create(&stack, "netops");
    let net2 = Network::create(&stack, "netops2");
    let c = w.run(&net, &net.name, IMAGE);
    w.wait_status(&c, "Running", RUNNING);

    stack.os_ok(&["appcontainer", "network", "attach", "--network", &net2.id, &c]);
    let (ip2, _) = poll(RUNNING, "an address on the attached network", || address_on(&stack, &c, &net2.id));
    let ips = w.exec(&c, &["ip", "-o", "-4", "addr"]);
    assert!(ips.contains(&format!("{ip2}/")), "attached interface inside: {ips}");
    let nets = w.show(&c)["networks"].as_str().unwrap_or_default().split(", ").count();
    assert_eq!(nets, 2, "two networks");

    stack.os_ok(&["appcontainer", "network", "detach", "--network", &net2.id, &c]);
    poll(RUNNING, "the detached network gone from addresses and its port removed", || {
        (address_on(&stack, &c, &net2.id).is_none() && net2.ports().iter().all(|p| p["Device ID"] != c.as_str())).then_some(())
    });

    let sg_name = common::unique("zunrs-netops-sg");
    let sg = stack.os_json(&["security", "group", "create", &sg_name]);
    let sg_id = sg["id"].as_str().unwrap().to_string();
    let (_, port_id) = address(&stack, &c, &net.id);
    let port_groups = || -> Vec<String> {
        let p = stack.os_json(&["port", "show", &port_id]);
        p["security_group_ids"].as_array().map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    // zun-api serves add/remove_security_group up to API 1.14 (removed in 1.15)
    stack.os_ok(&["--os-container-api-version", "1.14", "appcontainer", "add", "security", "group", &c, &sg_id]);
    poll(RUNNING, "the port carries the added security group", || port_groups().contains(&sg_id).then_some(()));
    stack.os_ok(&["--os-container-api-version", "1.14", "appcontainer", "remove", "security", "group", &c, &sg_id]);
    poll(RUNNING, "the security group removed from the port", || (!port_groups().contains(&sg_id)).then_some(()));

    stack.os_ok(&["appcontainer", "delete", "--stop", &c]);
    w.wait_gone(&c, RUNNING);
    let _ = stack.os(&["security", "group", "delete", &sg_id]);
}

/// `appcontainer run --expose-port`: zun's security group `zun-<uuid>` with one ingress
/// rule per port, on the container's port; Docker's `ExposedPorts`; the group deleted with
/// the container.
#[test]
fn exposed_ports_get_their_own_security_group() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "expose", "");
    let net = Network::create(&stack, "expose");
    let mut args = vec!["--expose-port", "8080", "--expose-port", "53/udp"];
    args.extend_from_slice(IMAGE);
    let c = w.run(&net, &net.name, &args);
    let shown = w.wait_status(&c, "Running", RUNNING);

    // zun-api's `security_groups` column holds the group the worker made.
    let groups: Vec<String> = match &shown["security_groups"] {
        Value::Array(a) => a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
        Value::String(s) => {
            s.split(',').map(|g| g.trim().trim_matches(|c| "[]'\" ".contains(c)).to_string()).filter(|g| !g.is_empty()).collect()
        }
        other => panic!("security_groups: {other}"),
    };
    assert_eq!(groups.len(), 1, "{shown}");
    let sg_id = groups[0].clone();
    let sg = stack.os_json(&["security", "group", "show", &sg_id]);
    assert_eq!(sg["name"], format!("zun-{c}").as_str(), "{sg}");
    let rules = stack.os_json(&["security", "group", "rule", "list", "--ingress", &sg_id]);
    let mut opened: Vec<(String, String, String)> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().map(str::to_string).unwrap_or_else(|| r[k].to_string());
            (s("IP Protocol"), s("Port Range"), s("IP Range"))
        })
        .collect();
    opened.sort();
    assert_eq!(
        opened,
        [
            ("tcp".to_string(), "8080:8080".to_string(), "0.0.0.0/0".to_string()),
            ("udp".to_string(), "53:53".to_string(), "0.0.0.0/0".to_string())
        ],
        "{rules}"
    );
    let (_, port_id) = address(&stack, &c, &net.id);
    let port = stack.os_json(&["port", "show", &port_id]);
    assert_eq!(port["security_group_ids"], serde_json::json!([sg_id]), "{port}");
    let out = std::process::Command::new("docker").args(["inspect", &format!("zun-{c}")]).output().expect("docker inspect");
    let inspect: Value = serde_json::from_slice(&out.stdout).expect("docker inspect JSON");
    let exposed = &inspect[0]["Config"]["ExposedPorts"];
    assert!(exposed.get("8080/tcp").is_some() && exposed.get("53/udp").is_some(), "{exposed}");

    stack.os_ok(&["appcontainer", "delete", "--stop", &c]);
    w.wait_gone(&c, RUNNING);
    poll(RUNNING, "the exposed ports' security group deleted", || {
        stack.try_os_json(&["security", "group", "show", &sg_id]).is_err().then_some(())
    });
}

/// A port the user created (`--net port=`) is preserved on delete; zun's own is not.
#[test]
fn delete_keeps_a_preserved_port() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "keep", "");
    let net = Network::create(&stack, "keep");
    let port = stack.os_json(&["port", "create", "--network", &net.id, &common::unique("zunrs-keep-port")]);
    let port_id = port["id"].as_str().unwrap().to_string();
    let port_ip =
        port["fixed_ips"].as_array().and_then(|a| a.first()).and_then(|f| f["ip_address"].as_str()).map(str::to_string).unwrap_or_default();

    let net_arg = format!("port={port_id}");
    let c = stack.os_json(&[
        "appcontainer",
        "run",
        "--host",
        &w.host,
        "--net",
        &net_arg,
        "--name",
        &net.name,
        "--image-pull-policy",
        "ifnotpresent",
        "busybox",
        "sleep",
        "3600",
    ])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    w.wait_status(&c, "Running", RUNNING);
    let (ip, _) = address(&stack, &c, &net.id);
    assert_eq!(ip, port_ip, "the container uses the given port's address");
    stack.os_ok(&["appcontainer", "delete", "--stop", &c]);
    w.wait_gone(&c, RUNNING);
    assert!(!docker_exists(&format!("zun-{c}")));
    let kept = stack.try_os_json(&["port", "show", &port_id]);
    assert!(kept.is_ok(), "the preserved port still exists: {kept:?}");
}

/// With Keystone's token lifetime short (180 s in the stack), the worker keeps working
/// after its service token expired: a create and a delete after the lifetime passed
/// still reach Running, free the port and the allocation.
#[test]
fn worker_keeps_working_across_token_expiry() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let lifetime: u64 = stack.var("ZUNRS_OS_TOKEN_LIFETIME").parse().unwrap_or(180);
    let w = StackWorker::start(&stack, "expiry", "");
    let rp = stack.provider_uuid(&w.host).unwrap();
    let net = Network::create(&stack, "expiry");
    let first = w.run(&net, &format!("{}-1", net.name), IMAGE);
    w.wait_status(&first, "Running", RUNNING);
    // a token issued now expires when the worker's start-up token has expired too
    let token = stack.issue_token();
    assert!(stack.token_valid(&token));
    let out = w.exec(&first, &["echo", "still-here"]);
    assert_eq!(out.trim(), "still-here");
    poll(Duration::from_secs(lifetime + 60), "Keystone rejects a token issued after the worker started", || {
        (!stack.token_valid(&token)).then_some(())
    });
    let second = w.run(&net, &format!("{}-2", net.name), IMAGE);
    w.wait_status(&second, "Running", RUNNING);
    assert_eq!(stack.ports_of(&second).len(), 1);
    for c in [&first, &second] {
        stack.os_ok(&["appcontainer", "delete", "--stop", c]);
        w.wait_gone(c, RUNNING);
        assert!(stack.ports_of(c).is_empty(), "port of {c} removed after the token expired");
    }
    poll(Duration::from_secs(60), "allocations freed after the token expired", || stack.provider_consumers(&rp).is_empty().then_some(()));
}
