//! Placement against the real Keystone 30 + Placement 16 of the project's stack, with the
//! worker binary on its own database and vhost, driven through zun's own rpcapi:
//! - the node's provider (uuid = compute_node uuid = rp_uuid, name = host) and its
//!   inventories match the compute_node row and zun's ratios;
//! - the disabled trait follows `zun_service.disabled`;
//! - the allocation zun-api's scheduler made is freed on delete and on a failed create;
//! - generation conflicts with another writer are refreshed and retried;
//! - Placement stopped: clear errors, a delete still completes, and the allocation is freed
//!   once Placement is back (this one holds the stack lock exclusively).
mod common;

use common::openstack::{up_only, StackLock};
use common::worker::Worker;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use zun_compute_rs::config::{ClientSection, ComputeSection, KeystoneAuthSection, Secret};
use zun_compute_rs::openstack::placement::{
    is_generation_conflict, HostResources, InventoryPolicy, NodeReport, Placement, DISK_GB, MEMORY_MB, TRAIT_COMPUTE_STATUS_DISABLED, VCPU,
};
use zun_compute_rs::openstack::{Auth, OpenStackError, Request, Service, Session};

const WAIT: Duration = Duration::from_secs(60);
const PROJECT: &str = "6a3b4d0c5e8f4f7e9b1a2c3d4e5f6a7b";
const USER: &str = "9f8e7d6c5b4a49382716a5b4c3d2e1f0";

fn env() -> HashMap<String, String> {
    up_only(&["keystone", "placement"])
}

/// zun.conf sections for the stack, as the conventions give them.
fn openstack_conf(env: &HashMap<String, String>) -> String {
    format!(
        "[keystone_auth]\nauth_type = password\nauth_url = {}\nusername = zun\npassword = zun\nproject_name = service\n\
         user_domain_name = Default\nproject_domain_name = Default\n\
         [placement_client]\nregion_name = RegionOne\nendpoint_type = publicURL\n",
        env["OS_AUTH_URL"]
    )
}

/// The test's own Placement client (the zun service user).
fn placement(env: &HashMap<String, String>) -> Placement {
    let conf = KeystoneAuthSection {
        auth_url: Some(env["OS_AUTH_URL"].clone()),
        username: Some("zun".into()),
        password: Some(Secret::new("zun")),
        user_domain_name: Some("Default".into()),
        project_name: Some("service".into()),
        project_domain_name: Some("Default".into()),
        ..Default::default()
    };
    let session = Session::new(&conf).unwrap();
    Placement::new(
        session.client(Service::Placement, &ClientSection { region_name: Some("RegionOne".into()), ..Default::default() }).unwrap(),
    )
}

/// Removes a provider and the allocations against it when the test ends, even when it fails.
struct ProviderCleanup {
    env: HashMap<String, String>,
    uuid: String,
}

impl Drop for ProviderCleanup {
    fn drop(&mut self) {
        let env = self.env.clone();
        let uuid = self.uuid.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let p = placement(&env);
                if let Ok(allocs) = p.provider_allocations(&uuid).await {
                    for consumer in allocs.keys() {
                        let _ = p.delete_allocation(consumer).await;
                    }
                }
                let _ = p.client().send(Auth::Service, &Request::delete(format!("/resource_providers/{uuid}"))).await;
            })
        })
        .join();
    }
}

async fn wait_provider(p: &Placement, uuid: &str) {
    wait_for(WAIT, &format!("provider {uuid} in Placement"), || async { p.get_provider(uuid).await.ok().flatten() }).await;
}

/// What zun-api's scheduler does when it picks this host: an allocation for the container.
async fn allocate(p: &Placement, rp: &str, consumer: &str) {
    let body = json!({
        "allocations": {rp: {"resources": {"VCPU": 1, "MEMORY_MB": 64}}},
        "consumer_generation": null, "project_id": PROJECT, "user_id": USER,
    });
    p.client()
        .call(Auth::Service, &Request::put(format!("/allocations/{consumer}"), body).microversion("1.28"))
        .await
        .expect("allocate as zun-api's scheduler does");
    assert!(!p.get_allocations(consumer).await.unwrap().allocations.is_empty());
}

async fn allocation_gone(p: &Placement, consumer: &str) -> Option<()> {
    p.get_allocations(consumer).await.ok().filter(|a| a.allocations.is_empty()).map(|_| ())
}

fn fields(uuid: &str, image: &str) -> Value {
    json!({
        "uuid": uuid, "name": format!("placement-{}", &uuid[..8]), "image": image, "image_pull_policy": "always",
        "command": ["sh", "-c", "exec sleep 300"], "memory": "64", "cpu": 1.0, "labels": {"app": "placement-test"},
        "status": "Creating", "project_id": PROJECT, "user_id": USER, "interactive": false, "tty": false,
    })
}

/// A worker reporting to the stack's Placement every 2 s: the worker, a zun client, its
/// provider's uuid (checked to be `compute_node.rp_uuid`, and present in Placement) and the
/// guard that removes the provider when the test ends.
async fn reporting_worker(env: &HashMap<String, String>) -> (Worker, ZunClient, String, ProviderCleanup) {
    let w = Worker::start_with("periodic_interval_max = 2", &openstack_conf(env));
    let mut zun = w.zun();
    let node = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    let rp = node["uuid"].as_str().unwrap().to_string();
    let cleanup = ProviderCleanup { env: env.clone(), uuid: rp.clone() };
    assert_eq!(node["rp_uuid"], rp.as_str(), "compute_node.rp_uuid is the provider uuid");
    wait_provider(&placement(env), &rp).await;
    (w, zun, rp, cleanup)
}

/// Makes an allocation for a new container on provider `rp` as zun-api's scheduler does,
/// creates and runs the container on `host`, waits until it is Running; its uuid.
async fn run_allocated(zun: &mut ZunClient, p: &Placement, rp: &str, host: &str) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    allocate(p, rp, &uuid).await;
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&uuid, "127.0.0.1:5000/busybox:latest"), "host": host, "run": true}))
        .await
        .unwrap();
    wait_row(zun, &uuid, "Running", settled("Running")).await;
    uuid
}

fn sql(db: &str, query: &str) {
    let out = std::process::Command::new("mariadb")
        .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root", "-e", query, db])
        .output()
        .expect("mariadb client");
    assert!(out.status.success(), "SQL {query}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_is_reported_as_zun_reports_it_and_the_disabled_trait_follows_the_service() {
    let _lock = StackLock::shared();
    let env = env();
    let (w, mut zun, rp, _cleanup) = reporting_worker(&env).await;
    let p = placement(&env);
    let provider = p.get_provider(&rp).await.unwrap().unwrap();
    assert_eq!(provider.name, w.host);

    let (_, inv) = p.get_inventories(&rp).await.unwrap();
    let node = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    let cpus = node["cpus"].as_i64().unwrap();
    let mem = node["mem_total"].as_i64().unwrap();
    assert_eq!((inv[VCPU].total, inv[VCPU].max_unit, inv[VCPU].reserved, inv[VCPU].allocation_ratio), (cpus, cpus, 0, 16.0), "{inv:?}");
    assert_eq!((inv[MEMORY_MB].total, inv[MEMORY_MB].reserved, inv[MEMORY_MB].allocation_ratio), (mem, 512, 1.5), "{inv:?}");
    // zun gives Placement the whole filesystem; compute_node.disk_total keeps reserve_disk_for_image back.
    let disk_total = node["disk_total"].as_i64().unwrap();
    assert!(inv[DISK_GB].total >= disk_total && inv[DISK_GB].total > 0, "{inv:?} vs disk_total {disk_total}");
    assert_eq!(inv[DISK_GB].allocation_ratio, 1.0);
    assert_eq!(inv.len(), 3);

    // Disabled in zun (as `openstack appcontainer service disable` does): the trait appears...
    sql(&w.db.name, &format!("UPDATE zun_service SET disabled = 1, disabled_reason = 'test' WHERE host = '{}'", w.host));
    wait_for(WAIT, "the disabled trait", || async {
        p.get_traits(&rp).await.ok().filter(|(_, t)| t.contains(TRAIT_COMPUTE_STATUS_DISABLED)).map(|_| ())
    })
    .await;
    // ...and goes when the service is enabled again.
    sql(&w.db.name, &format!("UPDATE zun_service SET disabled = 0, disabled_reason = NULL WHERE host = '{}'", w.host));
    wait_for(WAIT, "the disabled trait removed", || async {
        p.get_traits(&rp).await.ok().filter(|(_, t)| !t.contains(TRAIT_COMPUTE_STATUS_DISABLED)).map(|_| ())
    })
    .await;
    let log = w.log_text();
    assert!(log.contains("reported the node to Placement"), "{log}");
    assert!(!log.contains("zun_compute_pw") && !log.contains("X-Auth-Token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_are_freed_on_delete_and_on_a_failed_create() {
    let _lock = StackLock::shared();
    let env = env();
    let w = Worker::start(&openstack_conf(&env));
    let mut zun = w.zun();
    let node = zun.cmd_async("compute_node", json!({"hostname": w.host})).await.unwrap();
    let rp = node["uuid"].as_str().unwrap().to_string();
    let _cleanup = ProviderCleanup { env: env.clone(), uuid: rp.clone() };
    let p = placement(&env);
    wait_provider(&p, &rp).await;

    // Deleted: zun's GET + PUT of empty allocations.
    let a = run_allocated(&mut zun, &p, &rp, &w.host).await;
    assert!(!p.get_allocations(&a).await.unwrap().allocations.is_empty(), "a running container keeps its allocation");
    zun.cmd_async("rpcapi_delete", json!({"uuid": a, "force": true})).await.unwrap();
    wait_row(&mut zun, &a, "row deleted", Value::is_null).await;
    wait_for(WAIT, "allocation of the deleted container freed", || allocation_gone(&p, &a)).await;

    // A create that fails on this host (zun leaks the allocation here).
    let b = uuid::Uuid::new_v4().to_string();
    allocate(&p, &rp, &b).await;
    zun.cmd_async("rpcapi_create", json!({"fields": fields(&b, "127.0.0.1:5000/no-such-image-zunrs"), "host": w.host, "run": true}))
        .await
        .unwrap();
    let row = wait_row(&mut zun, &b, "Error", |r| r["status"] == "Error").await;
    assert!(row["status_reason"].as_str().is_some_and(|r| r.contains("no-such-image-zunrs")), "{row}");
    wait_for(WAIT, "allocation of the failed create freed", || allocation_gone(&p, &b)).await;
    assert!(p.provider_allocations(&rp).await.unwrap().is_empty());
    let _ = std::process::Command::new("docker").args(["rm", "-f", &format!("zun-{a}"), &format!("zun-{b}")]).output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_conflicts_are_refreshed_and_retried() {
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = zun_compute_rs::logging::filter(Some("zun_compute_rs=debug"), false);
        let _ = tracing_subscriber::registry().with(filter).with(tracing_subscriber::fmt::layer().with_test_writer()).try_init();
    }
    let _lock = StackLock::shared();
    let env = env();
    let p = placement(&env);
    let rp = uuid::Uuid::new_v4().to_string();
    let _cleanup = ProviderCleanup { env: env.clone(), uuid: rp.clone() };
    let mut node = NodeReport {
        uuid: rp.clone(),
        name: unique("zunrs-placement-conflict"),
        host: HostResources { vcpus: 4, memory_mb: 8192, disk_gb: 50 },
        policy: InventoryPolicy::from_compute(&ComputeSection::default()),
        service_disabled: false,
    };
    let first = p.sync_provider(&node).await.unwrap();
    assert!(first.created && first.inventories_updated && !first.traits_updated, "{first:?}");
    let started = std::time::Instant::now();
    let again = p.sync_provider(&node).await.unwrap();
    eprintln!("a sync pass with nothing to change took {:?}", started.elapsed());
    assert!(!again.created && !again.inventories_updated && !again.traits_updated, "nothing changed: {again:?}");

    // Another writer bumps the generation: a write at the old one is a 409 we recognise.
    let others = ["CUSTOM_OTHER_WRITER".to_string(), "CUSTOM_OTHER_WRITER_B".to_string()].into_iter().collect();
    p.ensure_traits(&others).await.unwrap();
    let (stale, inv) = p.get_inventories(&rp).await.unwrap();
    p.set_traits(&rp, stale, &["CUSTOM_OTHER_WRITER".to_string()].into_iter().collect()).await.unwrap_or_else(|e| {
        panic!("other writer: {e}");
    });
    let e = p.set_inventories(&rp, stale, &inv).await.unwrap_err();
    assert!(is_generation_conflict(&e), "{e}");
    assert!(e.to_string().contains("Placement PUT /resource_providers/") && e.to_string().contains("409"), "{e}");

    // Syncs racing a writer that keeps bumping the generation still land: each conflict
    // is refreshed and retried. The writer's session is warm before the race starts.
    let writer_p = placement(&env);
    writer_p.get_traits(&rp).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let rp = rp.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut bumps = 0;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 2000 {
                i += 1;
                let Ok((g, _)) = writer_p.get_traits(&rp).await else { continue };
                let t = if i % 2 == 0 { "CUSTOM_OTHER_WRITER" } else { "CUSTOM_OTHER_WRITER_B" };
                if writer_p.set_traits(&rp, g, &[t.to_string()].into_iter().collect()).await.is_ok() {
                    bumps += 1;
                }
                // Another service writing now and then, not a tight loop.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            bumps
        })
    };
    let mut conflicts = 0;
    for step in 0..20 {
        let mem = 9000 + step * 100;
        node.host.memory_mb = mem;
        node.service_disabled = step % 2 == 0;
        let r = p.sync_provider(&node).await.unwrap_or_else(|e| panic!("sync with memory {mem}: {e}"));
        conflicts += r.conflicts;
        let (_, inv) = p.get_inventories(&rp).await.unwrap();
        assert_eq!(inv[MEMORY_MB].total, mem);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let bumps = writer.await.unwrap();
    eprintln!("concurrent writer bumped the generation {bumps} times; 20 syncs met {conflicts} conflicts and retried them");
    assert!(bumps > 0, "the writer never wrote: no race happened");
    // The writer's own traits were kept: we only add or remove ours.
    let (_, traits) = p.get_traits(&rp).await.unwrap();
    assert!(traits.iter().any(|t| t.starts_with("CUSTOM_OTHER_WRITER")), "{traits:?}");
}

/// Stops Placement (exclusive stack lock), and always starts it again.
struct PlacementOutage;

impl PlacementOutage {
    fn begin() -> Self {
        let out = std::process::Command::new("bash").arg(repo_path("scripts/openstack.sh")).args(["stop", "placement"]).output().unwrap();
        assert!(out.status.success(), "stop placement: {}", String::from_utf8_lossy(&out.stderr));
        PlacementOutage
    }
}

impl Drop for PlacementOutage {
    fn drop(&mut self) {
        let out = std::process::Command::new("bash").arg(repo_path("scripts/openstack.sh")).args(["up", "placement"]).output().unwrap();
        if !out.status.success() {
            eprintln!("could not start placement again: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_down_gives_clear_errors_and_nothing_is_lost() {
    let _lock = StackLock::exclusive();
    let env = env();
    let (w, mut zun, rp, _cleanup) = reporting_worker(&env).await;
    let p = placement(&env);
    let a = run_allocated(&mut zun, &p, &rp, &w.host).await;

    {
        let outage = PlacementOutage::begin();
        let e = p.get_allocations(&a).await.unwrap_err();
        assert!(matches!(e, OpenStackError::Unreachable { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("Placement GET /allocations/{a} unreachable")), "{e}");
        // The delete completes without Placement.
        zun.cmd_async("rpcapi_delete", json!({"uuid": a, "force": true})).await.unwrap();
        wait_row(&mut zun, &a, "row deleted while Placement is down", Value::is_null).await;
        let log_has = |needle: &'static str| {
            let log = w.log_text();
            log.contains(needle).then_some(())
        };
        wait_for(WAIT, "the delete's warning", || async { log_has("could not free the container's Placement allocation now") }).await;
        wait_for(WAIT, "the inventory pass's warning", || async { log_has("compute node inventory failed") }).await;
        let log = w.log_text();
        assert!(log.lines().any(|l| l.contains("compute node inventory failed") && l.contains("Placement")), "{log}");
        drop(outage);
    }
    // Placement back: the next inventory pass frees what the delete could not.
    wait_for(Duration::from_secs(90), "the deleted container's allocation freed after the outage", || allocation_gone(&p, &a)).await;
    assert!(w.log_text().contains("freed a leaked Placement allocation"));
    let _ = std::process::Command::new("docker").args(["rm", "-f", &format!("zun-{a}")]).output();
    let _: BTreeMap<String, Value> = p.provider_allocations(&rp).await.unwrap();
}
