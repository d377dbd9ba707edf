//! Integration tests of the Docker adapter against the REAL engine.
//!
//! Needs dockerd on `/var/run/docker.sock` (or `ZUNRS_DOCKER_URL`), the local image
//! `busybox:latest`, and for the pull test the registry on 127.0.0.1:5000
//! (`bash scripts/services.sh` provides all three). Without the engine these tests FAIL
//! with a message saying so.
//!
//! Each test uses its own `zun-<uuid>` containers labelled `zunrs-test=1` and its own image
//! names, and removes what it created (also when it panics).

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zun_compute_rs::compute::mapping::{container_create_config, docker_name, MappingOptions};
use zun_compute_rs::compute::populate::{populate_from_inspect, populate_from_list_state};
use zun_compute_rs::compute::stats::zun_stats;
use zun_compute_rs::docker::{DockerClient, DockerErrorKind, DockerSettings};
use zun_compute_rs::oslo::object::Container;

const IMAGE_REPO: &str = "busybox";
const IMAGE_TAG: &str = "latest";
const REGISTRY: &str = "127.0.0.1:5000";

fn docker_url() -> String {
    std::env::var("ZUNRS_DOCKER_URL").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Connects and negotiates, or fails the test with a clear message.
async fn client() -> DockerClient {
    let url = docker_url();
    if let Some(path) = url.strip_prefix("unix://") {
        assert!(
            std::path::Path::new(path).exists(),
            "Docker socket {path} does not exist: these tests need a running Docker engine \
             (start it with `bash scripts/services.sh`, or set ZUNRS_DOCKER_URL)"
        );
    }
    let c = DockerClient::connect(&DockerSettings { api_url: url.clone(), timeout: Duration::from_secs(60) })
        .unwrap_or_else(|e| panic!("cannot connect to Docker at {url}: {e}"));
    c.negotiate_version().await.unwrap_or_else(|e| panic!("Docker at {url} does not answer: {e}"));
    assert!(c.image_exists("busybox:latest").await.unwrap().is_some(), "image busybox:latest is missing: run `bash scripts/services.sh`");
    c
}

/// Removes containers and images when dropped (also on panic).
struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    fn new(_test_client: &DockerClient) -> Self {
        Cleanup { containers: vec![], images: vec![] }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // A client of its own: the test's client keeps its idle connections alive on the
        // test's runtime, which is blocked in this drop, so a clone would wait forever.
        let containers = std::mem::take(&mut self.containers);
        let images = std::mem::take(&mut self.images);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            let Ok(c) = DockerClient::connect(&DockerSettings { api_url: docker_url(), timeout: Duration::from_secs(60) }) else { return };
            rt.block_on(async {
                for id in containers {
                    let _ = c.remove(&id, true).await;
                }
                for i in images {
                    let _ = c.remove_image(&i).await;
                }
            })
        })
        .join();
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// A zun Container in wire form, like zun-api sends it.
fn zun_container(command: Value, extra: Value) -> Container {
    let mut data = json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "name": "adapter-test",
        "image": "busybox",
        "command": command,
        "entrypoint": null,
        "memory": "64",
        "cpu": 0.5,
        "cpu_policy": "shared",
        "environment": {"K": "V"},
        "labels": {"zunrs-test": "1", "app": "acc"},
        "workdir": null,
        "hostname": null,
        "tty": false,
        "interactive": false,
        "privileged": false,
        "auto_remove": false,
        "runtime": null,
        "disk": null,
        "restart_policy": {},
        "healthcheck": "{}",
        "exposed_ports": "{\"8080/tcp\": {}}",
        "status": "Creating",
        "task_state": "container_creating",
        "status_reason": null,
        "status_detail": null,
        "ports": [],
        "container_id": null
    });
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    Container::with_data(data.as_object().unwrap().clone())
}

async fn mapping_options(c: &DockerClient) -> MappingOptions {
    let info = c.info().await.unwrap();
    MappingOptions {
        disk_quota_supported: info.disk_quota_supported().unwrap_or(false),
        api_version: c.api_version(),
        ..Default::default()
    }
}

/// Creates (through the mapping) and starts a container; returns its Docker id.
async fn create_started(c: &DockerClient, cleanup: &mut Cleanup, zc: &mut Container) -> String {
    let body = container_create_config(zc, IMAGE_REPO, IMAGE_TAG, &mapping_options(c).await).unwrap();
    let name = docker_name(zc).unwrap();
    let id = c.create(&name, body).await.unwrap();
    cleanup.containers.push(id.clone());
    c.start(&id).await.unwrap();
    id
}

/// Polls `inspect` until `pred` holds on it, or fails after 20 s.
async fn wait_inspect(c: &DockerClient, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = c.inspect(id).await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: State = {}", v["State"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn negotiates_version_and_reads_info() {
    let c = client().await;
    let v = c.api_version();
    let (maj, min) = v.split_once('.').unwrap();
    let (maj, min): (u32, u32) = (maj.parse().unwrap(), min.parse().unwrap());
    assert!(maj == 1 && (26..=53).contains(&min), "negotiated API version {v}");
    c.ping().await.unwrap();
    let info = c.info().await.unwrap();
    assert!(info.ncpu > 0 && info.mem_total > 0, "{info:?}");
    assert!(info.runtimes.iter().any(|r| r == "runc"), "{:?}", info.runtimes);
    assert!(!info.docker_root_dir.is_empty() && !info.driver.is_empty());
    assert_eq!(info.os_type, "linux");
    assert!(info.disk_quota_supported().is_some() || info.backing_filesystem() == Some("xfs"));
}

#[tokio::test]
async fn connect_errors_are_clear() {
    let e = DockerClient::connect(&DockerSettings { api_url: "unix:///nonexistent/docker.sock".into(), timeout: Duration::from_secs(5) })
        .unwrap_err();
    assert_eq!(e.kind, DockerErrorKind::Transport);
    assert!(e.to_string().contains("/nonexistent/docker.sock"), "{e}");
    let e = DockerClient::connect(&DockerSettings { api_url: "https://x:2376".into(), timeout: Duration::from_secs(5) }).unwrap_err();
    assert_eq!(e.kind, DockerErrorKind::Config);
}

#[tokio::test]
async fn pull_from_local_registry_and_missing_image() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let repo = format!("{REGISTRY}/zunrs-test-{}", rand_suffix());
    let reference = format!("{repo}:latest");
    c.tag_image("busybox:latest", &repo, "latest").await.unwrap();
    cleanup.images.push(reference.clone());
    c.push_image(&repo, "latest").await.unwrap();
    c.remove_image(&reference).await.unwrap();
    assert!(c.image_exists(&reference).await.unwrap().is_none());

    let status = c.pull(&repo, "latest", None).await.unwrap();
    assert!(status.contains(&reference), "final pull status: {status}");
    let inspect = c.image_exists(&reference).await.unwrap().expect("pulled image present");
    assert!(inspect["RepoTags"].as_array().unwrap().iter().any(|t| t == &json!(reference)));

    // A missing repository: 404 with Docker's message.
    let missing = format!("{REGISTRY}/zunrs-no-such-{}", rand_suffix());
    let e = c.pull(&missing, "latest", None).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.message.contains("not found") || e.message.contains("unknown"), "{e:?}");
    assert!(e.zun_message().starts_with("Docker internal error: 404 Client Error"), "{}", e.zun_message());

    // Missing image locally: inspect says None, remove says 404.
    assert!(c.image_exists(&format!("{missing}:latest")).await.unwrap().is_none());
    assert!(c.remove_image(&format!("{missing}:latest")).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn container_lifecycle_through_mapping_and_populate() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let mut zc = zun_container(json!(["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"]), json!({}));
    let body = container_create_config(&zc, IMAGE_REPO, IMAGE_TAG, &mapping_options(&c).await).unwrap();
    let name = docker_name(&zc).unwrap();
    let id = c.create(&name, body).await.unwrap();
    cleanup.containers.push(id.clone());

    // Created (forced populate, as zun's create does).
    let v = c.inspect(&id).await.unwrap();
    populate_from_inspect(&mut zc, &v, true, chrono::Utc::now());
    assert_eq!(zc.get_str("status"), Some("Created"));
    assert_eq!(zc.get_str("status_detail"), Some("Created"));
    assert_eq!(zc.get_str("container_id"), Some(id.as_str()));
    assert_eq!(zc.get_str("hostname"), Some(&id[..12]));
    assert_eq!(zc.get("ports"), Some(&json!([8080])));
    assert_eq!(zc.get_str("runtime"), Some("runc"));
    assert_eq!(v["HostConfig"]["Memory"], json!(64 * 1024 * 1024));
    assert_eq!(v["HostConfig"]["CpuShares"], json!(512));
    assert_eq!(v["Config"]["Labels"]["zunrs-test"], "1");
    assert!(v["Config"]["Env"].as_array().unwrap().contains(&json!("K=V")));

    // Running.
    zc.data.insert("task_state".into(), Value::Null);
    c.start(&id).await.unwrap();
    let v = wait_inspect(&c, &id, "running", |v| v["State"]["Running"] == json!(true)).await;
    populate_from_inspect(&mut zc, &v, false, chrono::Utc::now() + chrono::Duration::seconds(2));
    assert_eq!(zc.get_str("status"), Some("Running"));
    assert!(zc.get_str("status_detail").is_some_and(|d| d.starts_with("Up ")), "{:?}", zc.get("status_detail"));

    // The periodic list form.
    let list = c.list_zun_containers().await.unwrap();
    let mine = list.iter().find(|s| s.id == id).expect("listed");
    assert_eq!(mine.state, "running");
    assert_eq!(mine.zun_uuid(), zc.uuid());
    populate_from_list_state(&mut zc, &mine.state, false);
    assert_eq!(zc.get_str("status"), Some("Running"));
    assert_eq!(zc.get("status_detail"), Some(&Value::Null));

    // Logs (stdout and stderr, demultiplexed).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = c.logs(&id, true, true, false, Some("all".into()), None).await.unwrap();
        if logs.contains("hello\n") && logs.contains("oops\n") {
            let only_out = c.logs(&id, true, false, false, None, None).await.unwrap();
            assert_eq!(only_out, "hello\n");
            let tail = c.logs(&id, true, true, true, Some("1".into()), None).await.unwrap();
            assert_eq!(tail.lines().count(), 1, "{tail:?}");
            break;
        }
        assert!(Instant::now() < deadline, "logs never showed up: {logs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Exec with output and exit code.
    let cmd = zun_compute_rs::oslo::container_types::shlex_split("sh -c 'echo out; echo err >&2; exit 3'").unwrap();
    let exec_id = c.exec_create(&id, &cmd, false, false).await.unwrap();
    let out = c.exec_start_collect(&exec_id, Duration::from_secs(5)).await.unwrap();
    // stdout and stderr are separate pipes: their relative order is not fixed.
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["err", "out"], "{out:?}");
    let st = c.exec_inspect(&exec_id).await.unwrap();
    assert_eq!((st.running, st.exit_code), (false, Some(3)));

    // Top.
    let top = c.top(&id, None).await.unwrap();
    assert!(top["Titles"].as_array().unwrap().iter().any(|t| t == "PID"), "{top}");
    assert!(top["Processes"].as_array().unwrap().iter().any(|p| p.to_string().contains("sleep")), "{top}");
    let top = c.top(&id, Some("-o pid,comm")).await.unwrap();
    assert_eq!(top["Titles"], json!(["PID", "COMMAND"]));

    // Stats → zun dict.
    let raw = c.stats_once(&id).await.unwrap();
    let stats = zun_stats(Some("adapter-test"), &raw).unwrap();
    assert_eq!(stats["CONTAINER"], "adapter-test");
    assert_eq!(stats["MEM LIMIT(MiB)"].as_f64(), Some(64.0));
    assert!(stats["CPU %"].as_f64().unwrap() >= 0.0);
    assert!(stats["BLOCK I/O(B)"].as_str().unwrap().contains('/'));
    assert!(stats["NET I/O(B)"].as_str().unwrap().contains('/'));

    // Update resources.
    c.update_resources(&id, Some(128 * 1024 * 1024), Some(-1), Some(256)).await.unwrap();
    let v = c.inspect(&id).await.unwrap();
    assert_eq!(v["HostConfig"]["Memory"], json!(128 * 1024 * 1024));
    assert_eq!(v["HostConfig"]["CpuShares"], json!(256));

    // Pause / unpause, and the conflict texts zun reacts to.
    c.pause(&id).await.unwrap();
    let v = wait_inspect(&c, &id, "paused", |v| v["State"]["Paused"] == json!(true)).await;
    populate_from_inspect(&mut zc, &v, false, chrono::Utc::now());
    assert_eq!(zc.get_str("status"), Some("Paused"));
    let e = c.pause(&id).await.unwrap_err();
    assert!(e.is_conflict_state(), "{e:?}");
    c.unpause(&id).await.unwrap();
    let e = c.unpause(&id).await.unwrap_err();
    assert!(e.is_conflict_state(), "{e:?}");
    wait_inspect(&c, &id, "unpaused", |v| v["State"]["Paused"] == json!(false)).await;

    // Kill → exited.
    c.kill(&id, Some("SIGKILL".into())).await.unwrap();
    let v = wait_inspect(&c, &id, "killed", |v| v["State"]["Running"] == json!(false)).await;
    populate_from_inspect(&mut zc, &v, false, chrono::Utc::now() + chrono::Duration::seconds(2));
    assert_eq!(zc.get_str("status"), Some("Stopped"));
    assert!(zc.get_str("status_detail").is_some_and(|d| d.starts_with("Exited(137) ")), "{:?}", zc.get("status_detail"));
    let e = c.kill(&id, None).await.unwrap_err();
    assert!(e.is_not_running(), "{e:?}");

    // Restart → running; stop → exited.
    c.restart(&id, Some(1)).await.unwrap();
    wait_inspect(&c, &id, "restarted", |v| v["State"]["Running"] == json!(true)).await;
    c.stop(&id, Some(1)).await.unwrap();
    let v = c.inspect(&id).await.unwrap();
    assert_eq!(v["State"]["Running"], json!(false));
    assert_eq!(v["State"]["Status"], "exited");

    // Remove; removing again (404) is fine; inspect then says 404.
    c.remove(&id, false).await.unwrap();
    c.remove(&id, true).await.unwrap();
    let e = c.inspect(&id).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(e.to_string().starts_with("404 Client Error for GET /containers/"), "{e}");
    let e = c.start(&id).await.unwrap_err();
    assert!(e.is_not_found() && e.message.contains("No such container"), "{e:?}");
}

#[tokio::test]
async fn exec_timeout_and_unknown_exec() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let mut zc = zun_container(json!(["sleep", "300"]), json!({}));
    let id = create_started(&c, &mut cleanup, &mut zc).await;
    let exec_id = c.exec_create(&id, &["sleep".to_string(), "5".to_string()], false, false).await.unwrap();
    let e = c.exec_start_collect(&exec_id, Duration::from_millis(500)).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    let e = c.exec_resize("0123456789abcdef", 24, 80).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn tty_resize() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let mut zc = zun_container(json!(["sh"]), json!({"tty": true, "interactive": true}));
    let id = create_started(&c, &mut cleanup, &mut zc).await;
    let v = wait_inspect(&c, &id, "running", |v| v["State"]["Running"] == json!(true)).await;
    assert_eq!(v["Config"]["Tty"], json!(true));
    assert_eq!(v["Config"]["OpenStdin"], json!(true));
    // The container's terminal (PID 1's stdin) as `stty` reads it from inside.
    let tty_size = || async {
        let cmd = ["sh", "-c", "stty size < /proc/1/fd/0"].map(String::from);
        let exec_id = c.exec_create(&id, &cmd, false, false).await.unwrap();
        c.exec_start_collect(&exec_id, Duration::from_secs(10)).await.unwrap().trim().to_string()
    };
    let before = tty_size().await;
    for (h, w) in [(30, 100), (41, 123)] {
        assert_ne!(before, format!("{h} {w}"));
        c.resize_tty(&id, h, w).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = tty_size().await;
            if now == format!("{h} {w}") {
                break;
            }
            assert!(Instant::now() < deadline, "the terminal is still {now:?} after a resize to {h}x{w} (was {before:?})");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let exec_id = c.exec_create(&id, &["sh".to_string()], true, true).await.unwrap();
    assert!(!exec_id.is_empty());
}

// ---------------------------------------------------------------- archives

/// A one-file ustar archive.
fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[136..148].copy_from_slice(format!("{:011o}\0", 1_700_000_000u64).as_bytes());
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `(name, contents)` of the regular files in a tar.
fn untar(mut t: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![];
    while t.len() >= 512 && t[..512].iter().any(|&b| b != 0) {
        let name = String::from_utf8_lossy(&t[..100]).trim_end_matches('\0').to_string();
        let size_txt = String::from_utf8_lossy(&t[124..136]).trim_matches(|c: char| c == '\0' || c == ' ').to_string();
        let size = usize::from_str_radix(&size_txt, 8).unwrap_or(0);
        let typ = t[156];
        let data = t[512..512 + size].to_vec();
        if typ == b'0' || typ == 0 {
            files.push((name, data));
        }
        t = &t[512 + size.div_ceil(512) * 512..];
    }
    files
}

#[tokio::test]
async fn archive_round_trip() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let mut zc = zun_container(json!(["sleep", "300"]), json!({}));
    let id = create_started(&c, &mut cleanup, &mut zc).await;

    let contents = b"hello from zunrs\n";
    c.put_archive(&id, "/tmp", tar_with("hello.txt", contents)).await.unwrap();
    let (tar, stat) = c.get_archive(&id, "/tmp/hello.txt").await.unwrap();
    assert_eq!(untar(&tar), vec![("hello.txt".to_string(), contents.to_vec())]);
    assert_eq!(stat["name"], "hello.txt");
    assert_eq!(stat["size"], json!(contents.len()));
    assert_eq!(stat["linkTarget"], "");
    assert!(stat["mode"].as_u64().is_some() && stat["mtime"].is_string(), "{stat}");

    let e = c.get_archive(&id, "/no/such/path").await.unwrap_err();
    assert!(e.is_not_found() && e.message.contains("/no/such/path"), "{e:?}");
    let e = c.put_archive(&id, "/no/such/dir", tar_with("x", b"x")).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn commit_to_local_image() {
    let c = client().await;
    let mut cleanup = Cleanup::new(&c);
    let mut zc = zun_container(json!(["sh", "-c", "echo committed > /tmp/marker; exec sleep 300"]), json!({}));
    let id = create_started(&c, &mut cleanup, &mut zc).await;
    // Wait until the marker is written.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get_archive(&id, "/tmp/marker").await.is_err() {
        assert!(Instant::now() < deadline, "marker never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let repo = format!("zunrs-commit-{}", rand_suffix());
    let reference = format!("{repo}:t1");
    cleanup.images.push(reference.clone());
    let image_id = c.commit(&id, &repo, Some("t1")).await.unwrap();
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    let inspect = c.image_exists(&reference).await.unwrap().expect("committed image present");
    assert_eq!(inspect["Id"], json!(image_id));
    // The container keeps running (Docker pauses it only during the commit).
    let v = c.inspect(&id).await.unwrap();
    assert_eq!(v["State"]["Running"], json!(true));
    // Remove the container first, then the image.
    c.remove(&id, true).await.unwrap();
    c.remove_image(&reference).await.unwrap();
    assert!(c.image_exists(&reference).await.unwrap().is_none());
}
