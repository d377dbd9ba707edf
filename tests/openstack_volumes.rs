//! Cinder volumes end to end (issue 14, part 1): the real zun-api 18.0.0
//! (`openstack appcontainer run --mount ...`), the real Cinder of `scripts/openstack.sh`
//! (api, scheduler, volume with the loop-device driver `scripts/openstack/zunrs_loopvol`)
//! and zun-compute-rs as the compute host: the volume is reserved, connected (a loop
//! device), formatted, mounted under `[volume] volume_dir`, bound into the container,
//! and closed again on delete (unmount, terminate_connection, os-detach).
mod common;

use common::openstack::*;
use serde_json::Value;
use std::time::Duration;

const RUNNING: Duration = common::openstack::CREATE_WAIT;
const CINDER_CLIENT: &str = "[cinder_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n";

fn volume_show(stack: &Stack, id: &str) -> Option<Value> {
    stack.try_os_json(&["volume", "show", id]).ok()
}

fn create_volume(stack: &Stack, name: &str) -> String {
    let v = stack.os_json(&["volume", "create", "--size", "1", name]);
    let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string();
    poll(Duration::from_secs(60), &format!("volume {id} available"), || (volume_show(stack, &id)?["status"] == "available").then_some(()));
    id
}

/// Loop devices bound to the volume's backing file (the driver names it `<id>.img`).
fn loops_of(stack: &Stack, id: &str) -> Vec<String> {
    let file = format!("{}/state/cinder/volumes/{id}.img", stack.var("ZUNRS_OS_STATE"));
    let out = std::process::Command::new("losetup").args(["-j", &file]).output().expect("losetup");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

fn mounted_under(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy().to_string();
    text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&d)).map(str::to_string).collect()
}

fn attachments(v: &Value) -> Vec<Value> {
    match &v["attachments"] {
        Value::Array(a) => a.clone(),
        // the CLI may print the list as text
        Value::String(s) if s.trim().is_empty() || s.trim() == "[]" => vec![],
        Value::String(s) => serde_json::from_str::<Vec<Value>>(&s.replace('\'', "\"")).unwrap_or_else(|_| vec![Value::String(s.clone())]),
        _ => vec![],
    }
}

/// A file written in a Cinder volume survives the container's delete and is there for a
/// new container on the same volume; Cinder shows the attachment while attached and
/// none after; nothing stays mounted or bound to a loop device.
#[test]
fn cinder_volume_is_attached_written_detached_and_reattached() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "vol", CINDER_CLIENT);
    let net = Network::create(&stack, "vol");
    let vol = create_volume(&stack, &common::unique("zunrs-vol"));
    let mount = format!("source={vol},destination=/data");

    let c1 = w.run(&net, &common::unique("vol-a"), &["--mount", &mount, "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"]);
    w.wait_status(&c1, "Running", RUNNING);
    w.exec(&c1, &["sh", "-c", "echo written-by-a > /data/f && sync"]);
    let shown = volume_show(&stack, &vol).unwrap();
    assert_eq!(shown["status"], "in-use", "{shown}");
    let att = attachments(&shown);
    assert_eq!(att.len(), 1, "{shown}");
    assert_eq!(att[0]["server_id"], c1.as_str(), "{shown}");
    assert_eq!(loops_of(&stack, &vol).len(), 1, "one loop device while attached");
    let mnt = w.dir.path().join("mnt");
    assert_eq!(mounted_under(&mnt).len(), 1, "one mount under {}", mnt.display());
    // The mapping as zun wrote it: connection_info recorded on the volume row.
    let rows = stack.sql(&format!(
        "SELECT v.volume_provider, v.cinder_volume_id, v.connection_info, m.container_path FROM volume_mapping m \
         JOIN volume v ON v.id = m.volume_id WHERE m.container_uuid = '{c1}'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "cinder");
    assert_eq!(rows[0][1], vol);
    assert!(rows[0][2].contains("\"driver_volume_type\": \"local\"") && rows[0][2].contains("/dev/loop"), "{rows:?}");
    assert_eq!(rows[0][3], "/data");

    stack.os_ok(&["appcontainer", "delete", "--force", &c1]);
    w.wait_gone(&c1, RUNNING);
    poll(Duration::from_secs(30), "volume available again", || (volume_show(&stack, &vol)?["status"] == "available").then_some(()));
    assert!(attachments(&volume_show(&stack, &vol).unwrap()).is_empty());
    assert!(loops_of(&stack, &vol).is_empty(), "terminate_connection released the loop device");
    assert!(mounted_under(&mnt).is_empty(), "nothing mounted after delete");
    assert!(stack.sql(&format!("SELECT id FROM volume WHERE cinder_volume_id = '{vol}'")).is_empty(), "volume row removed");

    let c2 = w.run(&net, &common::unique("vol-b"), &["--mount", &mount, "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"]);
    w.wait_status(&c2, "Running", RUNNING);
    assert_eq!(w.exec(&c2, &["cat", "/data/f"]).trim(), "written-by-a");
    stack.os_ok(&["appcontainer", "delete", "--force", &c2]);
    w.wait_gone(&c2, RUNNING);
    poll(Duration::from_secs(30), "volume available again", || (volume_show(&stack, &vol)?["status"] == "available").then_some(()));
    assert!(loops_of(&stack, &vol).is_empty());
    stack.os_ok(&["volume", "delete", &vol]);
}

/// A compute host restart with a Cinder volume in use: with the worker down, the container
/// stops and the volume is unmounted (as a reboot leaves them; the loop device, Cinder's
/// connection, stays). The worker started again mounts it again before it consumes
/// (`remount_container_volume`, on by default: zun's `_remount_volume`, without ever
/// formatting a device that holds data) and, with `resume_container_state`, starts the
/// container, which finds what it wrote.
#[test]
fn a_restart_mounts_the_volume_again_and_resumes_the_container() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let mut w = StackWorker::start(&stack, "remount", &format!("{CINDER_CLIENT}[compute]\nresume_container_state = true\n"));
    let net = Network::create(&stack, "remount");
    let vol = create_volume(&stack, &common::unique("zunrs-vol"));
    let mount = format!("source={vol},destination=/data");
    let c = w.run(&net, &common::unique("vol-r"), &["--mount", &mount, "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"]);
    w.wait_status(&c, "Running", RUNNING);
    w.exec(&c, &["sh", "-c", "echo before-restart > /data/f && sync"]);
    let mnt = w.dir.path().join("mnt");
    let mounted = mounted_under(&mnt);
    assert_eq!(mounted.len(), 1, "{mounted:?}");

    w.stop();
    let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output().expect("docker");
    assert!(docker(&["stop", "-t", "1", &format!("zun-{c}")]).status.success());
    let out = std::process::Command::new("umount").arg(&mounted[0]).output().expect("umount");
    assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
    assert!(mounted_under(&mnt).is_empty());

    w.spawn();
    assert_eq!(mounted_under(&mnt), mounted, "mounted again before the worker consumes");
    poll(RUNNING, "the container started again", || {
        let out = docker(&["inspect", "-f", "{{.State.Running}}", &format!("zun-{c}")]);
        (String::from_utf8_lossy(&out.stdout).trim() == "true").then_some(())
    });
    assert_eq!(w.exec(&c, &["cat", "/data/f"]).trim(), "before-restart");
    assert_eq!(loops_of(&stack, &vol).len(), 1, "the same connection, not a second one");

    stack.os_ok(&["appcontainer", "delete", "--force", &c]);
    w.wait_gone(&c, RUNNING);
    poll(Duration::from_secs(30), "volume available again", || (volume_show(&stack, &vol)?["status"] == "available").then_some(()));
    assert!(loops_of(&stack, &vol).is_empty());
    assert!(mounted_under(&mnt).is_empty());
    stack.os_ok(&["volume", "delete", &vol]);
}

/// `--mount size=1`: zun-api creates the volume with auto_remove; the delete removes it
/// from Cinder.
#[test]
fn auto_remove_volume_is_deleted_with_its_container() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "volauto", CINDER_CLIENT);
    let net = Network::create(&stack, "volauto");
    let c = w.run(
        &net,
        &common::unique("vol-auto"),
        &["--mount", "size=1,destination=/scratch", "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"],
    );
    w.wait_status(&c, "Running", RUNNING);
    let rows = stack.sql(&format!(
        "SELECT v.cinder_volume_id, v.auto_remove FROM volume_mapping m JOIN volume v ON v.id = m.volume_id WHERE m.container_uuid = '{c}'"
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], "1");
    let vol = rows[0][0].clone();
    assert_eq!(volume_show(&stack, &vol).unwrap()["status"], "in-use");
    w.exec(&c, &["sh", "-c", "echo x > /scratch/x"]);
    stack.os_ok(&["appcontainer", "delete", "--force", &c]);
    w.wait_gone(&c, RUNNING);
    poll(Duration::from_secs(60), &format!("auto_remove volume {vol} gone from Cinder"), || {
        volume_show(&stack, &vol).is_none().then_some(())
    });
    assert!(loops_of(&stack, &vol).is_empty());
}

/// A volume stuck in `creating` ends the create in Error with zun's reason after
/// `[volume] timeout_wait_volume_available`; nothing is attached, mounted or mapped.
#[test]
fn volume_stuck_in_creating_fails_the_create_cleanly() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let extra = format!("{CINDER_CLIENT}[volume]\ntimeout_wait_volume_available = 3\n");
    let w = StackWorker::start(&stack, "volstuck", &extra);
    let net = Network::create(&stack, "volstuck");
    let vol = create_volume(&stack, &common::unique("zunrs-stuck"));
    stack.os_ok(&["volume", "set", "--state", "creating", &vol]);
    let mount = format!("source={vol},destination=/data");
    let c =
        w.run(&net, &common::unique("vol-stuck"), &["--mount", &mount, "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"]);
    let shown = w.wait_status(&c, "Error", RUNNING);
    assert_eq!(shown["status_reason"], "Volumes did not reach available status after 3 seconds", "{shown}");
    let v = volume_show(&stack, &vol).unwrap();
    assert_eq!(v["status"], "creating", "untouched: {v}");
    assert!(attachments(&v).is_empty(), "{v}");
    assert!(loops_of(&stack, &vol).is_empty());
    assert!(mounted_under(&w.dir.path().join("mnt")).is_empty());
    assert!(stack.sql(&format!("SELECT id FROM volume_mapping WHERE container_uuid = '{c}'")).is_empty());
    stack.os_ok(&["volume", "set", "--state", "available", &vol]);
    stack.os_ok(&["volume", "delete", &vol]);
}

/// Cinder down when the create reaches the worker (zun-api checked the volume, then the
/// worker was frozen while Cinder stopped): the create ends Error with a reason naming
/// Cinder, and once Cinder is back the volume is untouched: no attachment, no loop
/// device, nothing mounted, no mapping row.
#[test]
fn cinder_down_fails_the_create_with_a_clear_reason() {
    let _lock = StackLock::exclusive();
    let stack = Stack::up();
    let w = StackWorker::start(&stack, "voldown", CINDER_CLIENT);
    let net = Network::create(&stack, "voldown");
    let vol = create_volume(&stack, &common::unique("zunrs-down"));
    let mount = format!("source={vol},destination=/data");
    w.freeze();
    let c =
        w.run(&net, &common::unique("vol-down"), &["--mount", &mount, "--image-pull-policy", "ifnotpresent", "busybox", "sleep", "3600"]);
    stack.stop_service("cinder");
    w.thaw();
    let shown = w.wait_status(&c, "Error", RUNNING);
    stack.start_service("cinder");
    let reason = shown["status_reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("Cinder"), "the reason names Cinder: {shown}");
    let v = volume_show(&stack, &vol).unwrap();
    assert_eq!(v["status"], "available", "{v}");
    assert!(attachments(&v).is_empty(), "{v}");
    assert!(loops_of(&stack, &vol).is_empty());
    assert!(mounted_under(&w.dir.path().join("mnt")).is_empty());
    assert!(stack.sql(&format!("SELECT id FROM volume_mapping WHERE container_uuid = '{c}'")).is_empty());
    stack.os_ok(&["volume", "delete", &vol]);
}
