//! The state store against a real MariaDB whose schema is built by zun 18.0.0's own
//! `zun-db-manage upgrade` (one database per test), and read back through the real
//! `zun.objects` and zun-api's servicegroup check (tests/conformance/store_readback.py).
//!
//! Needs MariaDB on `ZUN_RS_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`, see
//! scripts/services.sh) and the conformance venv at `ZUN_RS_VENV` (default
//! /var/tmp/zun-rs/venv, see scripts/conformance-venv.sh).
mod store_common;

use serde_json::{json, Value};
use std::sync::Arc;
use store_common::{new_uuid, readback, scenarios, TestDb};
use zun_compute_rs::store::{Store, StoreError};

async fn setup() -> (TestDb, Store) {
    let db = TestDb::mariadb().await;
    let store = db.open().await;
    assert_eq!(store.backend(), "mysql");
    (db, store)
}

#[tokio::test]
async fn mariadb_container_insert_and_read() {
    let (db, s) = setup().await;
    scenarios::container_insert_and_read(&db, &s).await;
}

#[tokio::test]
async fn mariadb_container_insert_defaults() {
    let (db, s) = setup().await;
    scenarios::container_insert_defaults(&db, &s).await;
}

#[tokio::test]
async fn mariadb_actions_lookup() {
    let (db, s) = setup().await;
    scenarios::actions_lookup(&db, &s).await;
}

#[tokio::test]
async fn mariadb_delete_flow() {
    let (db, s) = setup().await;
    scenarios::delete_flow(&db, &s).await;
}

#[tokio::test]
async fn mariadb_bad_input() {
    let (db, s) = setup().await;
    scenarios::bad_input(&db, &s).await;
}

#[tokio::test]
async fn mariadb_four_byte_utf8() {
    let (db, s) = setup().await;
    scenarios::four_byte_utf8(&db, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_concurrency() {
    let (db, s) = setup().await;
    scenarios::concurrency(&db, Arc::new(s)).await;
}

#[tokio::test]
async fn mariadb_exec_and_image() {
    let (db, s) = setup().await;
    scenarios::exec_and_image(&db, &s).await;
}

#[tokio::test]
async fn mariadb_schema_check_names_missing() {
    let (db, s) = setup().await;
    scenarios::schema_check_names_missing(&db, &s).await;
}

/// A database without zun's schema is refused with the full list of what is missing.
#[tokio::test]
async fn mariadb_empty_database_is_refused() {
    let db = TestDb::mariadb().await;
    db.raw_exec("DROP TABLE `container_actions_events`").await;
    let s = db.open_unchecked().await;
    match s.check_schema().await {
        Err(StoreError::SchemaMissing { missing }) => {
            assert_eq!(missing, vec!["container_actions_events (table missing)".to_string()]);
        }
        other => panic!("expected SchemaMissing, got {other:?}"),
    }
}

/// The create flow, the heartbeat and the compute node, then zun's own objects load all of
/// it without error and see the same values.
#[tokio::test]
async fn mariadb_zun_objects_read_what_we_wrote() {
    let (db, s) = setup().await;
    let (uuid, req, bad, bad_req) = scenarios::compute_create_flow(&db, &s).await;
    scenarios::heartbeat(&db, &s).await;
    scenarios::compute_node(&db, &s, "cn-host").await;

    let conf = db.python_conf("realnode", 180);
    let out = readback(&conf, &["read", "--uuid", &uuid, "--request-id", &req, "--host", "cn-host"]);

    // Container.get_by_uuid: the primitive zun builds equals what the store returns.
    let ours = s.container_get(&uuid).await.unwrap().unwrap().to_primitive().to_value();
    assert_eq!(out["container"], ours, "zun's Container.obj_to_primitive() vs container_get()");
    assert_eq!(out["container_fields"]["status"], "Running");
    assert_eq!(out["container_fields"]["host"], "realnode");
    assert_eq!(out["container_fields"]["exposed_ports"], json!({"80/tcp": {}}));
    assert_eq!(out["container_fields"]["disk"], 10);

    // ContainerAction / ContainerActionEvent.
    let action = &out["action"];
    assert_eq!(action["action"], "create");
    assert_eq!(action["request_id"], json!(req));
    assert!(action["finish_time"].is_string());
    assert_eq!(action["message"], Value::Null);
    let events = out["events"].as_array().unwrap();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["compute__do_container_create", "compute__do_container_start"]);
    for e in events {
        assert_eq!(e["result"], "Success");
        assert_eq!(e["traceback"], Value::Null);
        assert!(e["finish_time"].is_string() && e["start_time"].is_string());
    }

    // ZunService.list_by_binary + servicegroup: up.
    let services = out["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["host"], "realnode");
    assert_eq!(services[0]["report_count"], 2);
    assert_eq!(services[0]["is_up"], true);
    assert_eq!(services[0]["forced_down"], false);

    // ComputeNode.get_by_name.
    assert!(out.get("compute_node_error").is_none(), "{}", out["compute_node_error"]);
    let node = &out["compute_node"];
    assert_eq!(node["hostname"], "cn-host");
    assert_eq!(node["mem_used"], 192);
    assert_eq!(node["running_containers"], 2);
    assert_eq!(node["cpu_used"], 1.5);
    assert_eq!(node["disk_quota_supported"], true);
    assert_eq!(node["runtimes"], json!(["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"]));
    assert_eq!(node["numa_topology"], json!({"nodes": []}));
    assert_eq!(node["rp_uuid"], node["uuid"]);

    // The failed create as zun sees it.
    let out = readback(&conf, &["read", "--uuid", &bad, "--request-id", &bad_req]);
    assert_eq!(out["container"]["zun_object.data"]["status"], "Error");
    assert_eq!(out["action"]["message"], "Error");
    assert_eq!(out["events"][0]["result"], "Error");
    assert!(out["events"][0]["traceback"].as_str().unwrap().contains("ImagePullError"));
}

/// Rows written by zun-api's own code are read and updated by the store, and zun reads the
/// result back: the delete path with `status='Deleting'` carried in changes.
#[tokio::test]
async fn mariadb_rows_written_by_zun_api() {
    let (db, s) = setup().await;
    let conf = db.python_conf("realnode", 180);
    let uuid = new_uuid();
    let req = format!("req-{}", new_uuid());
    let created = readback(&conf, &["api-create", "--uuid", &uuid, "--request-id", &req]);

    // Our read of zun's row equals zun's own primitive of it.
    let mut ours = s.container_get(&uuid).await.unwrap().unwrap();
    assert_eq!(created["container"], ours.to_primitive().to_value());
    assert_eq!(ours.get("annotations"), Some(&json!(r#"{"a": "b"}"#)));

    // Compute's create work, on zun-api's row and action.
    s.event_start(&uuid, &req, true, "compute__do_container_create").await.unwrap();
    ours.set("host", json!("realnode"));
    ours.set("status", json!("Created"));
    ours.set("cni_metadata", json!(r#"{"ip": "10.0.0.5"}"#));
    // (No pinned cpuset here: zun 18.0.0 itself stores `{"cpuset_cpus": [0, 1], ...}` after a
    // dedicated claim and then fails to load it back ("A set is required in field
    // cpuset_cpus, not a list"); the store writes the same text, checked in unit tests.)
    s.container_save(&mut ours).await.unwrap();
    s.event_finish(&uuid, &req, true, "compute__do_container_create", Ok(())).await.unwrap();
    s.action_finish(&uuid, &req, "create", false).await.unwrap();
    let out = readback(&conf, &["read", "--uuid", &uuid, "--request-id", &req]);
    assert_eq!(out["container"], s.container_get(&uuid).await.unwrap().unwrap().to_primitive().to_value());
    assert_eq!(out["container_fields"]["host"], "realnode");
    assert!(out["action"]["finish_time"].is_string());

    // zun-api's delete: status Deleting unsaved, then compute's first save writes it.
    let mut del = s.container_get(&uuid).await.unwrap().unwrap();
    del.set("status", json!("Deleting"));
    let wire = del.to_primitive().to_value();
    assert_eq!(wire["zun_object.changes"], json!(["status"]));
    let mut received =
        zun_compute_rs::oslo::Container::from_primitive(zun_compute_rs::oslo::ObjectPrimitive::from_value(&wire).unwrap()).unwrap();
    received.set("task_state", json!("container_deleting"));
    s.container_save(&mut received).await.unwrap();
    let out = readback(&conf, &["read", "--uuid", &uuid]);
    assert_eq!(out["container_fields"]["status"], "Deleting");
    assert_eq!(out["container_fields"]["task_state"], "container_deleting");
    s.container_destroy(&uuid).await.unwrap();
    assert_eq!(db.count("container_actions", &format!("`container_uuid`='{uuid}'")).await, 0);
}

/// zun-api's servicegroup sees the host up right after a heartbeat and down once the
/// heartbeats stop (service_down_time shortened to 3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_servicegroup_up_then_down() {
    let (db, s) = setup().await;
    let conf = db.python_conf("sg-host", 3);
    let s = Arc::new(s);
    // Heartbeat every second (one "interval") while the up check runs.
    let hb = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                s.service_heartbeat("sg-host", "zun-compute", "nova").await.unwrap();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        })
    };
    let conf_up = conf.clone();
    let up = tokio::task::spawn_blocking(move || {
        readback(&conf_up, &["service-wait", "--host", "sg-host", "--expect", "up", "--deadline", "5"])
    })
    .await
    .unwrap();
    assert_eq!(up["reached"], true, "{up}");
    assert!(up["elapsed"].as_f64().unwrap() < 2.0, "up within one interval: {up}");
    hb.abort();
    let _ = hb.await;
    let last = s.service_get("sg-host", "zun-compute").await.unwrap().unwrap();
    assert!(last.report_count >= 1);
    let down = tokio::task::spawn_blocking(move || {
        readback(&conf, &["service-wait", "--host", "sg-host", "--expect", "down", "--deadline", "15"])
    })
    .await
    .unwrap();
    assert_eq!(down["reached"], true, "{down}");
    assert_eq!(down["service_down_time"], 3);
}

/// A login the real server refuses never reveals the password, in the error or in the log.
/// The test first proves the server is there (a good login), and then that the bad login
/// reached it and was refused by it (SQLSTATE 28000), so it cannot pass without MariaDB.
#[tokio::test]
async fn mariadb_bad_password_is_not_logged() {
    use sqlx::Connection;
    let server = store_common::mysql_server_url();
    let mut good = sqlx::MySqlConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot reach MariaDB at {server} ({e}); run `bash scripts/services.sh`"));
    good.ping().await.expect("MariaDB answers a ping");
    good.close().await.ok();

    let rest = server.split_once("://").map(|(_, r)| r).unwrap().trim_end_matches('/');
    let hostpart = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let url = format!("mysql+pymysql://nosuchuser:Sup3rSecret@{hostpart}/zun?charset=utf8");

    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(logs.clone()).finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let err = Store::connect(Some(&url), std::path::Path::new("/tmp/unused.db")).await.unwrap_err();
    drop(guard);

    match &err {
        StoreError::Connect { source: sqlx::Error::Database(db), .. } => {
            // SQLSTATE 28000: invalid authorization (MariaDB error 1045 or 1698).
            assert_eq!(db.code().as_deref(), Some("28000"), "the server refused the login: {db}");
        }
        other => panic!("expected MariaDB to refuse the login (SQLSTATE 28000), got {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(!text.contains("Sup3rSecret"), "{text}");
    assert!(text.contains("nosuchuser@"), "{text}");
    let logged = logs.text();
    assert!(!logged.contains("Sup3rSecret"), "{logged}");
}

/// Collects what a test's tracing subscriber writes.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
