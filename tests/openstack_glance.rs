//! Issue 14, part 2: Glance images, with the real Glance 33 (file store, keystone auth)
//! of `scripts/openstack.sh`, the real zun-api 18.0.0 and the real `openstack` CLI.
//!
//! The image is a `docker save` of the local registry's busybox uploaded to Glance
//! (container_format docker). `appcontainer run --image-driver glance` runs it;
//! `image_search` (zun's rpcapi, to this worker's host: zun-api sends it to any host)
//! finds it; `appcontainer commit` puts a new image in Glance that runs in turn. A
//! corrupt image (bytes changed in Glance's store, its checksum kept) and Glance down
//! end the create in Error with the reason, with no tar left and no image loaded.
mod common;

use common::openstack::*;
use common::{unique, write_conf, ZunClient};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RUNNING: Duration = common::openstack::CREATE_WAIT;
const BUSYBOX: &str = "127.0.0.1:5000/busybox:latest";

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("run docker");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn docker_image_exists(reference: &str) -> bool {
    docker(&["image", "inspect", reference]).0
}

/// `docker save` of the registry's busybox (pulled when Docker lacks it).
fn busybox_tar(dir: &Path) -> PathBuf {
    if !docker_image_exists(BUSYBOX) {
        let (ok, out) = docker(&["pull", BUSYBOX]);
        assert!(ok, "docker pull {BUSYBOX}: {out}");
    }
    let tar = dir.join("busybox.tar");
    let (ok, out) = docker(&["save", BUSYBOX, "-o", tar.to_str().unwrap()]);
    assert!(ok, "docker save {BUSYBOX}: {out}");
    tar
}

/// A Glance image of the test's, deleted on drop (with the Docker tags named after it).
struct GlanceImage<'a> {
    stack: &'a Stack,
    id: String,
    local: Vec<String>,
}

impl<'a> GlanceImage<'a> {
    fn upload(stack: &'a Stack, name: &str, tar: &Path) -> Self {
        let v = stack.os_json(&[
            "image",
            "create",
            "--container-format",
            "docker",
            "--disk-format",
            "raw",
            "--public",
            "--file",
            tar.to_str().unwrap(),
            name,
        ]);
        let id = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string();
        let local = vec![format!("{name}:latest"), format!("{id}:latest")];
        GlanceImage { stack, id, local }
    }

    fn adopt(stack: &'a Stack, id: &str, local: Vec<String>) -> Self {
        let mut local = local;
        local.push(format!("{id}:latest"));
        GlanceImage { stack, id: id.to_string(), local }
    }

    fn show(&self) -> Value {
        self.stack.os_json(&["image", "show", &self.id])
    }
}

impl Drop for GlanceImage<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.stack.os(&["image", "delete", &self.id]) {
            eprintln!("cleanup: Glance image {} not deleted: {e}", self.id);
        }
        for r in &self.local {
            let _ = docker(&["rmi", r]);
        }
    }
}

/// What the worker left under `[glance] images_directory` (default `$state_path/images`).
fn leftover_tars(w: &StackWorker) -> Vec<String> {
    let dir = w.dir.path().join("images");
    match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// zun's rpcapi client on the stack's vhost and database.
fn zun_client(stack: &Stack, dir: &Path) -> ZunClient {
    let conf = write_conf(
        dir,
        "zun-client.conf",
        &format!(
            "[DEFAULT]\ntransport_url = {}\n[database]\nconnection = {}\n",
            stack.var("ZUNRS_OS_TRANSPORT_URL"),
            stack.var("ZUNRS_OS_DB_URL")
        ),
    );
    ZunClient::start(&conf, false)
}

fn search(zc: &mut ZunClient, stack: &Stack, host: &str, image: &str, exact: bool) -> Vec<String> {
    let r = zc
        .cmd(
            "call",
            json!({
                "server": host, "method": "image_search", "auth_token": stack.issue_token(),
                "is_admin": true, "roles": ["admin"], "timeout": 60,
                "kwargs": {"image": image, "image_driver_name": "glance", "exact_match": exact, "registry": null},
            }),
        )
        .unwrap_or_else(|e| panic!("image_search {image}: {e}"));
    r.as_array()
        .unwrap_or_else(|| panic!("image_search answered {r}"))
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

/// A Glance image runs; `image_search` finds it (exact and by part of its name);
/// `container_commit` creates a Glance image, active with the docker format and the tag,
/// which runs by its id. No tar is left after the create nor after the commit.
#[test]
fn a_glance_image_runs_is_found_and_a_commit_of_it_runs_too() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let tmp = tempfile::tempdir().unwrap();
    let w = StackWorker::start(&stack, "glance", "");
    let net = Network::create(&stack, "glance");
    let name = unique("zunrs-glance-img");
    let img = GlanceImage::upload(&stack, &name, &busybox_tar(tmp.path()));
    let shown = img.show();
    assert_eq!(shown["status"], "active", "{shown}");

    let started = std::time::Instant::now();
    let uuid = w.run(&net, &unique("zunrs-glance-c"), &["--image-driver", "glance", &name, "sleep", "3600"]);
    let c = w.wait_status(&uuid, "Running", RUNNING);
    eprintln!("[glance] image {} found, downloaded, verified, loaded, running in {:.1} s", img.id, started.elapsed().as_secs_f64());
    assert_eq!(c["image_driver"], "glance", "{c}");
    assert!(docker_image_exists(&format!("{name}:latest")), "the Glance image is loaded and tagged {name}:latest");
    assert_eq!(leftover_tars(&w), Vec::<String>::new(), "the downloaded tar is removed after docker load");
    assert_eq!(w.exec(&uuid, &["echo", "from-glance"]).trim(), "from-glance");

    // image_search against Glance, through zun's rpcapi to this worker
    let mut zc = zun_client(&stack, tmp.path());
    assert_eq!(search(&mut zc, &stack, &w.host, &name, true), vec![img.id.clone()]);
    let partial = &name[..name.len() - 3];
    assert!(search(&mut zc, &stack, &w.host, partial, false).contains(&img.id), "a non-exact search finds {name} by {partial}");
    assert!(search(&mut zc, &stack, &w.host, partial, true).is_empty(), "an exact search of a part finds nothing");
    assert_eq!(search(&mut zc, &stack, &w.host, &img.id, true), vec![img.id.clone()], "an id finds its image");

    // commit through zun-api: a new Glance image
    let repo = unique("zunrs-glance-commit");
    let started = std::time::Instant::now();
    let out = stack.os_ok(&["appcontainer", "commit", &uuid, &format!("{repo}:v1")]);
    let new_id = out
        .split("The image is ")
        .nth(1)
        .map(|s| s.trim().trim_end_matches('.').to_string())
        .unwrap_or_else(|| panic!("commit printed no image: {out}"));
    let committed = GlanceImage::adopt(&stack, &new_id, vec![format!("{repo}:v1")]);
    eprintln!("[glance] commit + save + upload in {:.1} s", started.elapsed().as_secs_f64());
    let shown = committed.show();
    assert_eq!(shown["status"], "active", "the committed image has its data: {shown}");
    assert_eq!(shown["container_format"], "docker", "{shown}");
    assert_eq!(shown["name"], repo.as_str(), "{shown}");
    assert!(shown["tags"].to_string().contains("v1"), "tag v1: {shown}");
    assert_eq!(leftover_tars(&w), Vec::<String>::new(), "the saved tar is removed after the upload");
    let c = w.show(&uuid);
    assert_eq!(c["status"], "Running", "unpaused after the commit: {c}");

    // the committed image runs, found by its Glance id
    let uuid2 = w.run(&net, &unique("zunrs-glance-c2"), &["--image-driver", "glance", &new_id, "sleep", "3600"]);
    w.wait_status(&uuid2, "Running", RUNNING);
    assert_eq!(w.exec(&uuid2, &["echo", "committed"]).trim(), "committed");
    assert_eq!(leftover_tars(&w), Vec::<String>::new());
    drop(zc);
}

/// `appcontainer image pull <Glance image id> <host>` (admin, through zun-api): the worker
/// downloads the image, loads it (Docker holds the tar's own tag again) and records in
/// zun's image row what Docker holds: repo and tag from the tar, Docker's id and size.
#[test]
fn an_image_pull_by_glance_id_loads_and_records_the_image() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let tmp = tempfile::tempdir().unwrap();
    let w = StackWorker::start(&stack, "gpull", "");
    let repo = unique("zunrs-gpull");
    let local = format!("{repo}:v7");
    busybox_tar(tmp.path());
    let tar = tmp.path().join("pull.tar");
    assert!(docker(&["tag", BUSYBOX, &local]).0);
    let (ok, out) = docker(&["save", &local, "-o", tar.to_str().unwrap()]);
    assert!(ok, "docker save: {out}");
    assert!(docker(&["rmi", &local]).0);
    let mut img = GlanceImage::upload(&stack, &repo, &tar);
    img.local.push(local.clone());

    let pulled = stack.os_json(&["appcontainer", "image", "pull", &img.id, &w.host]);
    let uuid = pulled["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {pulled}")).to_string();
    let shown = poll(RUNNING, "the image row filled in by the worker", || {
        let v = stack.try_os_json(&["appcontainer", "image", "show", &uuid]).ok()?;
        v["image_id"].as_str().is_some_and(|s| !s.is_empty()).then_some(v)
    });
    assert!(docker_image_exists(&local), "the Glance image was loaded: {local} is back in Docker");
    let (_, id) = docker(&["image", "inspect", "-f", "{{.Id}}", &local]);
    assert_eq!(shown["image_id"], id.trim(), "{shown}");
    assert_eq!((shown["repo"].as_str(), shown["tag"].as_str()), (Some(repo.as_str()), Some("v7")), "{shown}");
    let size = shown["size"].as_i64().or_else(|| shown["size"].as_str().and_then(|s| s.parse().ok()));
    assert!(size.is_some_and(|s| s > 0), "{shown}");
    assert_eq!(leftover_tars(&w), Vec::<String>::new(), "the downloaded tar is removed");
    // (zun's image delete removes Docker's image by id, busybox's here: only the row goes.)
    stack.sql(&format!("DELETE FROM image WHERE uuid = '{uuid}'"));
}

/// Glance's stored bytes changed, its checksum kept: the download is refused, the
/// create ends in Error saying so, no tar is left and nothing is loaded.
#[test]
fn a_corrupt_glance_image_ends_the_create_in_error_with_nothing_loaded() {
    let _lock = StackLock::shared();
    let stack = Stack::up();
    let tmp = tempfile::tempdir().unwrap();
    let w = StackWorker::start(&stack, "glance-bad", "");
    let net = Network::create(&stack, "glance-bad");
    let name = unique("zunrs-glance-bad");
    let img = GlanceImage::upload(&stack, &name, &busybox_tar(tmp.path()));
    let stored = Path::new(&stack.var("ZUNRS_OS_STATE")).join("state/glance/images").join(&img.id);
    let mut bytes = std::fs::read(&stored).unwrap_or_else(|e| panic!("Glance's file {}: {e}", stored.display()));
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();

    let uuid = w.run(&net, &unique("zunrs-glance-bad"), &["--image-driver", "glance", &name, "sleep", "3600"]);
    let c = w.wait_status(&uuid, "Error", RUNNING);
    let reason = c["status_reason"].as_str().unwrap_or_default();
    eprintln!("[glance] corrupt image: {reason}");
    assert!(reason.contains("checksum mismatch") && reason.contains(&img.id), "reason: {reason}");
    assert_eq!(leftover_tars(&w), Vec::<String>::new(), "no tar left");
    assert!(!docker_image_exists(&format!("{name}:latest")), "nothing loaded nor tagged");
}

/// Glance stopped: the create ends in Error naming Glance; nothing is left. Glance is
/// started again (also when the test fails).
#[test]
fn glance_down_ends_the_create_in_error_with_nothing_loaded() {
    let _lock = StackLock::exclusive();
    let stack = Stack::up();
    let tmp = tempfile::tempdir().unwrap();
    let w = StackWorker::start(&stack, "glance-down", "");
    let net = Network::create(&stack, "glance-down");
    let name = unique("zunrs-glance-down");
    let img = GlanceImage::upload(&stack, &name, &busybox_tar(tmp.path()));

    struct Restart<'a>(&'a Stack);
    impl Drop for Restart<'_> {
        fn drop(&mut self) {
            self.0.start_service("glance");
        }
    }
    stack.stop_service("glance");
    let restart = Restart(&stack);
    let uuid = w.run(&net, &unique("zunrs-glance-down"), &["--image-driver", "glance", &name, "sleep", "3600"]);
    let c = w.wait_status(&uuid, "Error", RUNNING);
    let reason = c["status_reason"].as_str().unwrap_or_default();
    eprintln!("[glance] Glance down: {reason}");
    assert!(reason.contains("Cannot download image from glance") && reason.contains("Glance"), "reason: {reason}");
    assert!(reason.contains("unreachable"), "reason: {reason}");
    assert_eq!(leftover_tars(&w), Vec::<String>::new(), "no tar left");
    assert!(!docker_image_exists(&format!("{name}:latest")), "nothing loaded nor tagged");
    drop(restart);
    drop(img);
}
