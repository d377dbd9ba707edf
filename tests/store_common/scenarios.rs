//! Store scenarios run against both backends (tests/store_sqlite.rs, tests/store_mariadb.rs).
//! Each checks the exact column text the database holds, as the real zun-compute wrote it
//! (tests/fixtures/docker/zun-compute-db-rows.json).
use super::{fixture_container, new_container, new_uuid, TestDb};
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::Arc;
use zun_compute_rs::store::{ComputeNodeRecord, Store, StoreError};

const HOST: &str = "realnode";

fn is_set(v: &Option<String>) -> bool {
    v.is_some()
}

/// A container inserted from the object (standalone use) reads back field for field.
pub async fn container_insert_and_read(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "web-1");
    store.container_save(&mut c).await.unwrap();
    assert!(c.changes.is_empty());
    assert!(c.get("id").and_then(Value::as_i64).is_some(), "insert sets id on the object");

    let got = store.container_get(&uuid).await.unwrap().expect("row");
    assert_eq!(got.name, "Container");
    assert_eq!(got.version, "1.44");
    assert!(got.changes.is_empty());
    let want = fixture_container("container_create_cast");
    let keys: Vec<&String> = got.data.keys().collect();
    let want_keys: Vec<&String> = want.data.keys().collect();
    assert_eq!(keys, want_keys, "every column field, in zun's field order");
    for (k, v) in &want.data {
        match k.as_str() {
            "id" | "uuid" | "created_at" => continue,
            // None in the object, '[]' in the row (zun's JSONEncodedList), [] when read back.
            "entrypoint" => assert_eq!(got.data.get(k), Some(&json!([]))),
            _ => assert_eq!(got.data.get(k), Some(v), "field {k}"),
        }
    }
    assert_eq!(got.get("uuid"), Some(&json!(uuid)));
    let created = got.get("created_at").and_then(Value::as_str).unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");

    // Exact column text, as zun stores it.
    let row = db
        .raw_row(
            "container",
            &[
                "command",
                "environment",
                "ports",
                "labels",
                "addresses",
                "restart_policy",
                "security_groups",
                "exposed_ports",
                "healthcheck",
                "cpuset",
                "annotations",
                "cni_metadata",
                "entrypoint",
                "memory",
                "cpu",
                "interactive",
                "auto_remove",
                "container_type",
                "host",
                "runtime",
                "updated_at",
                "created_at",
                "cpu_policy",
                "disk",
            ],
            &format!("`uuid` = '{uuid}'"),
        )
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(row["command"], s(r#"["sh", "-c", "echo hello && sleep 3600"]"#));
    assert_eq!(row["environment"], s(r#"{"FOO": "bar", "LOG_LEVEL": "debug"}"#));
    assert_eq!(row["ports"], s("[]"));
    assert_eq!(row["labels"], s(r#"{"app": "web", "tier": "frontend"}"#));
    assert_eq!(row["addresses"], s("{}"));
    assert_eq!(row["restart_policy"], s(r#"{"Name": "on-failure", "MaximumRetryCount": "3"}"#));
    assert_eq!(row["security_groups"], s(r#"["default"]"#));
    assert_eq!(row["exposed_ports"], s(r#"{"80/tcp": {}}"#));
    assert_eq!(row["healthcheck"], s("{}"));
    assert_eq!(row["cpuset"], s(r#"{"cpuset_cpus": null, "cpuset_mems": null}"#));
    assert_eq!(row["annotations"], s("{}"));
    assert_eq!(row["cni_metadata"], s("{}"));
    assert_eq!(row["entrypoint"], s("[]"), "None is stored as []");
    assert_eq!(row["memory"], s("512"));
    assert_eq!(row["cpu"], s("0.5"));
    assert_eq!(row["interactive"], s("0"));
    assert_eq!(row["auto_remove"], s("0"));
    assert_eq!(row["container_type"], s("0"));
    assert_eq!(row["host"], None);
    assert_eq!(row["runtime"], None);
    assert_eq!(row["updated_at"], None, "an INSERT does not set updated_at");
    assert_eq!(row["created_at"].as_deref().map(str::len), Some(19), "whole seconds: {:?}", row["created_at"]);
    assert_eq!(row["cpu_policy"], s("shared"));
    assert_eq!(row["disk"], s("0"));

    assert!(store.container_get(&new_uuid()).await.unwrap().is_none());
    assert_eq!(store.container_uuids_by_host(HOST).await.unwrap(), Vec::<String>::new());
}

/// Unset columns get zun's ORM defaults on INSERT; None JSON columns become '{}' / '[]'.
pub async fn container_insert_defaults(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "bare");
    for f in ["cpu_policy", "disk", "tty", "privileged", "environment", "cpuset", "annotations", "ports"] {
        c.data.remove(f);
    }
    c.data.insert("labels".into(), Value::Null);
    store.container_save(&mut c).await.unwrap();
    let row = db
        .raw_row(
            "container",
            &["cpu_policy", "disk", "tty", "privileged", "environment", "cpuset", "annotations", "ports", "labels"],
            &format!("`uuid` = '{uuid}'"),
        )
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(row["cpu_policy"], s("shared"));
    assert_eq!(row["disk"], s("0"));
    assert_eq!(row["tty"], s("0"));
    assert_eq!(row["privileged"], s("0"));
    assert_eq!(row["environment"], s("{}"));
    assert_eq!(row["cpuset"], s("{}"));
    assert_eq!(row["annotations"], None);
    assert_eq!(row["ports"], s("[]"));
    assert_eq!(row["labels"], s("{}"));
    let got = store.container_get(&uuid).await.unwrap().unwrap();
    assert_eq!(got.get("annotations"), Some(&Value::Null));
    assert_eq!(got.get("cpuset").unwrap()["zun_object.data"], json!({"cpuset_cpus": null, "cpuset_mems": null}));
    assert_eq!(got.get("environment"), Some(&json!({})));
}

/// The create --run sequence of zun's manager, then a failed create; returns
/// (ok uuid, ok request id, failed uuid, failed request id).
pub async fn compute_create_flow(db: &TestDb, store: &Store) -> (String, String, String, String) {
    let uuid = new_uuid();
    let req = format!("req-{}", new_uuid());
    let mut c = new_container(&uuid, "fixture-1");
    store.container_save(&mut c).await.unwrap();
    let mut c = store.container_get(&uuid).await.unwrap().unwrap();
    let start = Utc::now().naive_utc();
    store
        .action_start(&uuid, &req, Some("c9d8e7f6a5b44c3d9e2f1a0b9c8d7e6f"), Some("5f3e1c2a9b8d4e7f8a6b5c4d3e2f1a0b"), "create", start)
        .await
        .unwrap();

    store.event_start(&uuid, &req, true, "compute__do_container_create").await.unwrap();
    c.set("host", json!(HOST));
    store.container_save(&mut c).await.unwrap();
    c.set("task_state", json!("container_creating"));
    store.container_save(&mut c).await.unwrap();
    assert_eq!(
        db.raw_row("container", &["task_state"], &format!("`uuid`='{uuid}'")).await["task_state"].as_deref(),
        Some("container_creating")
    );
    c.set("container_id", json!("892f1466edb074116c5bd21dc10cb41a3ec027594d9199e4932c4715c2aea6de"));
    c.set("status", json!("Created"));
    c.set("status_detail", json!("Created"));
    c.set("hostname", json!("892f1466edb0"));
    c.set("addresses", json!("{}"));
    c.set("entrypoint", json!([]));
    c.set("runtime", json!("runc"));
    c.set("disk", json!(10));
    store.container_save(&mut c).await.unwrap();
    c.set("task_state", Value::Null);
    store.container_save(&mut c).await.unwrap();
    store.event_finish(&uuid, &req, true, "compute__do_container_create", Ok(())).await.unwrap();

    store.event_start(&uuid, &req, true, "compute__do_container_start").await.unwrap();
    c.set("task_state", json!("container_starting"));
    store.container_save(&mut c).await.unwrap();
    c.set("status", json!("Running"));
    c.set("status_reason", Value::Null);
    c.set("started_at", json!("2026-11-28T14:02:20Z"));
    store.container_save(&mut c).await.unwrap();
    c.set("task_state", Value::Null);
    store.container_save(&mut c).await.unwrap();
    store.event_finish(&uuid, &req, true, "compute__do_container_start", Ok(())).await.unwrap();
    store.action_finish(&uuid, &req, "create", false).await.unwrap();

    let row = db
        .raw_row(
            "container",
            &[
                "status",
                "task_state",
                "host",
                "container_id",
                "hostname",
                "status_detail",
                "runtime",
                "disk",
                "entrypoint",
                "started_at",
                "updated_at",
                "status_reason",
            ],
            &format!("`uuid`='{uuid}'"),
        )
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(row["status"], s("Running"));
    assert_eq!(row["task_state"], None);
    assert_eq!(row["host"], s(HOST));
    assert_eq!(row["hostname"], s("892f1466edb0"));
    assert_eq!(row["status_detail"], s("Created"));
    assert_eq!(row["runtime"], s("runc"));
    assert_eq!(row["disk"], s("10"));
    assert_eq!(row["entrypoint"], s("[]"));
    assert_eq!(row["started_at"], s("2026-11-28 14:02:20"));
    assert_eq!(row["status_reason"], None);
    assert!(is_set(&row["updated_at"]));

    let action = db
        .raw_row(
            "container_actions",
            &["action", "request_id", "start_time", "finish_time", "message", "created_at", "updated_at", "user_id"],
            &format!("`container_uuid`='{uuid}'"),
        )
        .await;
    assert_eq!(action["action"], s("create"));
    assert_eq!(action["request_id"], Some(req.clone()));
    assert!(is_set(&action["finish_time"]) && is_set(&action["updated_at"]) && is_set(&action["created_at"]));
    assert_eq!(action["message"], None);
    assert_eq!(action["start_time"].as_deref().map(str::len), Some(19));

    let events = db
        .raw_rows(
            "container_actions_events",
            &["id", "event", "result", "traceback", "start_time", "finish_time", "details"],
            &format!("`action_id` IN (SELECT `id` FROM `container_actions` WHERE `container_uuid`='{uuid}')"),
        )
        .await;
    assert_eq!(events.len(), 2);
    let mut names: Vec<_> = events.iter().map(|e| e[1].clone().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["compute__do_container_create", "compute__do_container_start"]);
    for e in &events {
        assert_eq!(e[2].as_deref(), Some("Success"));
        assert_eq!(e[3], None);
        assert!(is_set(&e[4]) && is_set(&e[5]));
        assert_eq!(e[6], None);
    }

    // A failed create: status Error with the reason, event Error with traceback, message Error.
    let bad = new_uuid();
    let bad_req = format!("req-{}", new_uuid());
    let mut b = new_container(&bad, "broken");
    store.container_save(&mut b).await.unwrap();
    store.action_start(&bad, &bad_req, None, Some("p"), "create", start).await.unwrap();
    store.event_start(&bad, &bad_req, true, "compute__do_container_create").await.unwrap();
    b.set("host", json!(HOST));
    store.container_save(&mut b).await.unwrap();
    b.set("status", json!("Error"));
    b.set("status_reason", json!("Cannot download image from docker: Error on pulling image: 127.0.0.1:5000/nope:latest"));
    store.container_save(&mut b).await.unwrap();
    let tb = "  File \"src/compute/create.rs\", in do_container_create\nImagePullError: 404 😀 not found";
    store.event_finish(&bad, &bad_req, true, "compute__do_container_create", Err(tb.to_string())).await.unwrap();
    store.action_finish(&bad, &bad_req, "create", true).await.unwrap();
    let a = db.raw_row("container_actions", &["message", "finish_time"], &format!("`container_uuid`='{bad}'")).await;
    assert_eq!(a["message"], s("Error"));
    let e = db
        .raw_row(
            "container_actions_events",
            &["result", "traceback"],
            &format!("`action_id` IN (SELECT `id` FROM `container_actions` WHERE `container_uuid`='{bad}')"),
        )
        .await;
    assert_eq!(e["result"], s("Error"));
    assert_eq!(e["traceback"], Some(tb.replace('😀', "\u{FFFD}")));
    let r = db.raw_row("container", &["status", "status_reason"], &format!("`uuid`='{bad}'")).await;
    assert_eq!(r["status"], s("Error"));

    let mut on_host = store.container_uuids_by_host(HOST).await.unwrap();
    on_host.sort();
    let mut want = vec![uuid.clone(), bad.clone()];
    want.sort();
    assert_eq!(on_host, want);
    let full = store.containers_by_host(HOST).await.unwrap();
    assert_eq!(full.len(), 2);
    // The state read: the same rows, only the state columns, the same values in them.
    let states = store.container_states_by_host(HOST).await.unwrap();
    assert_eq!(states.len(), 2);
    for (st, f) in states.iter().zip(&full) {
        let mut keys: Vec<&str> = st.data.keys().map(String::as_str).collect();
        keys.sort();
        let mut want_keys = zun_compute_rs::store::container::STATE_FIELDS.to_vec();
        want_keys.sort();
        assert_eq!(keys, want_keys);
        for k in zun_compute_rs::store::container::STATE_FIELDS {
            assert_eq!(st.get(k), f.get(k), "{k}");
        }
        assert_eq!((st.name.as_str(), st.version.as_str()), (f.name.as_str(), f.version.as_str()));
    }
    (uuid, req, bad, bad_req)
}

/// Action/event lookup rules and their errors.
pub async fn actions_lookup(_db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "acts");
    store.container_save(&mut c).await.unwrap();
    let t = Utc::now().naive_utc();
    store.action_start(&uuid, "req-old", None, Some("p"), "stop", t).await.unwrap();
    let newest = store.action_start(&uuid, "req-new", None, Some("p"), "start", t).await.unwrap();

    // Unknown request id with a project-scoped context: not found.
    match store.event_start(&uuid, "req-restart", true, "compute__do_container_start").await {
        Err(StoreError::ContainerActionNotFound { container_uuid, request_id }) => {
            assert_eq!(container_uuid, uuid);
            assert_eq!(request_id, "req-restart");
        }
        other => panic!("expected ContainerActionNotFound, got {other:?}"),
    }
    // Admin/periodic context (no project id): falls back to the newest action.
    store.event_start(&uuid, "req-restart", false, "compute__do_container_start").await.unwrap();
    store.event_finish(&uuid, "req-restart", false, "compute__do_container_start", Ok(())).await.unwrap();
    let n = _db.count("container_actions_events", &format!("`action_id` = {newest} AND `result` = 'Success'")).await;
    assert_eq!(n, 1);
    match store.event_finish(&uuid, "req-new", true, "compute__nope", Ok(())).await {
        Err(StoreError::ContainerActionEventNotFound { action_id, event }) => {
            assert_eq!(action_id, newest);
            assert_eq!(event, "compute__nope");
        }
        other => panic!("expected ContainerActionEventNotFound, got {other:?}"),
    }
    match store.action_finish(&uuid, "req-missing", "start", false).await {
        Err(StoreError::ActionNotFound { matched: 0, .. }) => {}
        other => panic!("expected ActionNotFound, got {other:?}"),
    }
    // Two rows matching: refused, nothing changed.
    store.action_start(&uuid, "req-dup", None, Some("p"), "kill", t).await.unwrap();
    store.action_start(&uuid, "req-dup", None, Some("p"), "kill", t).await.unwrap();
    match store.action_finish(&uuid, "req-dup", "kill", true).await {
        Err(StoreError::ActionNotFound { matched: 2, .. }) => {}
        other => panic!("expected ActionNotFound(2), got {other:?}"),
    }
    assert_eq!(_db.count("container_actions", "`request_id` = 'req-dup' AND `finish_time` IS NULL").await, 2);
}

/// A delete: the unsaved `status='Deleting'` travels in changes and is saved with the first
/// save; destroy removes the volume mappings first, then the row with its actions/events.
pub async fn delete_flow(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "doomed");
    c.data.insert("host".into(), json!(HOST));
    c.data.insert("status".into(), json!("Stopped"));
    store.container_save(&mut c).await.unwrap();
    let t = Utc::now().naive_utc();
    store.action_start(&uuid, "req-del", None, Some("p"), "delete", t).await.unwrap();
    store.event_start(&uuid, "req-del", true, "compute__do_container_delete").await.unwrap();
    let id = store.container_get(&uuid).await.unwrap().unwrap().get("id").and_then(Value::as_i64).unwrap();
    store.exec_instance_insert(id, "exec-1", Some("tcp://127.0.0.1:2375"), Some("tok")).await.unwrap();

    // The delete cast's object: status Deleting unsaved (in changes).
    let mut d = fixture_container("container_delete_cast");
    d.data.insert("uuid".into(), json!(uuid));
    d.data.insert("id".into(), json!(id));
    assert!(d.changes.contains("status"));
    d.set("task_state", json!("container_deleting"));
    store.container_save(&mut d).await.unwrap();
    let row = db.raw_row("container", &["status", "task_state", "host"], &format!("`uuid`='{uuid}'")).await;
    assert_eq!(row["status"].as_deref(), Some("Deleting"));
    assert_eq!(row["task_state"].as_deref(), Some("container_deleting"));
    assert_eq!(row["host"].as_deref(), Some(HOST), "host was not in changes, so it is not overwritten");

    // A volume mapping (no cascade on container_uuid in zun's schema).
    let vol_uuid = new_uuid();
    db.raw_exec(&format!("INSERT INTO `volume` (`uuid`, `volume_provider`, `auto_remove`) VALUES ('{vol_uuid}', 'local', 0)")).await;
    db.raw_exec(&format!(
        "INSERT INTO `volume_mapping` (`uuid`, `container_uuid`, `container_path`, `volume_id`) \
         SELECT '{}', '{uuid}', '/data', `id` FROM `volume` WHERE `uuid` = '{vol_uuid}'",
        new_uuid()
    ))
    .await;

    store.container_destroy(&uuid).await.unwrap();
    assert_eq!(db.count("container", &format!("`uuid`='{uuid}'")).await, 0);
    assert_eq!(db.count("container_actions", &format!("`container_uuid`='{uuid}'")).await, 0);
    assert_eq!(db.count("container_actions_events", "`action_id` NOT IN (SELECT `id` FROM `container_actions`)").await, 0);
    assert_eq!(db.count("exec_instance", &format!("`container_id`={id}")).await, 0);
    assert_eq!(db.count("volume_mapping", &format!("`container_uuid`='{uuid}'")).await, 0);
    assert_eq!(db.count("volume", &format!("`uuid`='{vol_uuid}'")).await, 1);
    match store.container_destroy(&uuid).await {
        Err(StoreError::ContainerNotFound { uuid: u }) => assert_eq!(u, uuid),
        other => panic!("expected ContainerNotFound, got {other:?}"),
    }
}

/// Values that violate the schema are refused before anything is written.
pub async fn bad_input(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "strict");
    store.container_save(&mut c).await.unwrap();
    let cols = [
        "status",
        "status_detail",
        "task_state",
        "ports",
        "disk",
        "hostname",
        "runtime",
        "labels",
        "updated_at",
        "cpu",
        "auto_remove",
        "addresses",
    ];
    let before = db.raw_row("container", &cols, &format!("`uuid`='{uuid}'")).await;
    let cases: Vec<(&str, Value)> = vec![
        ("status", json!("x".repeat(21))),
        ("status", json!("Sleeping")),
        ("status_detail", json!("y".repeat(51))),
        ("task_state", json!("container_dancing")),
        ("hostname", json!("h".repeat(256))),
        ("runtime", json!("r".repeat(33))),
        ("ports", json!(["80"])),
        ("ports", json!("80")),
        ("disk", json!("10")),
        ("disk", json!(1.5)),
        ("disk", json!(1u64 << 40)),
        ("labels", json!({"a": 1})),
        ("labels", json!(["a"])),
        ("cpu", json!("half")),
        ("auto_remove", json!("yes")),
        ("addresses", json!("not json")),
        ("addresses", json!("[1, 2]")),
        ("started_at", json!("yesterday")),
    ];
    for (field, value) in cases {
        let mut obj = store.container_get(&uuid).await.unwrap().unwrap();
        obj.set("status_reason", json!("must not be written either"));
        obj.set(field, value.clone());
        match store.container_save(&mut obj).await {
            Err(StoreError::InvalidField { uuid: u, field: f, reason }) => {
                assert_eq!(u, uuid);
                assert_eq!(f, field, "{value}: {reason}");
                let msg = StoreError::InvalidField { uuid: u, field: f, reason }.to_string();
                assert!(msg.contains(field) && msg.contains(&uuid), "{msg}");
            }
            other => panic!("{field}={value}: expected InvalidField, got {other:?}"),
        }
        assert!(obj.changes.contains(field), "changes are kept after a refused save");
        let after = db.raw_row("container", &cols, &format!("`uuid`='{uuid}'")).await;
        assert_eq!(before, after, "{field}={value} left the row as it was");
        assert_eq!(db.raw_row("container", &["status_reason"], &format!("`uuid`='{uuid}'")).await["status_reason"], None);
    }
    // Non-container objects and objects without a uuid are refused too.
    let mut no_uuid = new_container(&uuid, "x");
    no_uuid.data.remove("uuid");
    assert!(matches!(store.container_save(&mut no_uuid).await, Err(StoreError::InvalidObject(_))));
}

/// 4-byte UTF-8 cannot be stored in utf8mb3: replaced in text columns, escaped in JSON ones.
pub async fn four_byte_utf8(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "emoji");
    store.container_save(&mut c).await.unwrap();
    let mut c = store.container_get(&uuid).await.unwrap().unwrap();
    c.set("status_reason", json!("boom 🔥 in docker"));
    c.set("labels", json!({"mood": "🙂", "é": "ü"}));
    store.container_save(&mut c).await.unwrap();
    let row = db.raw_row("container", &["status_reason", "labels"], &format!("`uuid`='{uuid}'")).await;
    assert_eq!(row["status_reason"].as_deref(), Some("boom \u{FFFD} in docker"));
    assert_eq!(row["labels"].as_deref(), Some(r#"{"mood": "\ud83d\ude42", "\u00e9": "\u00fc"}"#));
    let got = store.container_get(&uuid).await.unwrap().unwrap();
    assert_eq!(got.get("labels"), Some(&json!({"mood": "🙂", "é": "ü"})));
}

/// Many containers updated in parallel (and several writers on the same rows): every field
/// written is there at the end, no deadlock surfaces.
pub async fn concurrency(db: &TestDb, store: Arc<Store>) {
    const N: usize = 16;
    const ROUNDS: usize = 6;
    let mut uuids = Vec::new();
    for i in 0..N {
        let uuid = new_uuid();
        let mut c = new_container(&uuid, &format!("par-{i}"));
        store.container_save(&mut c).await.unwrap();
        uuids.push(uuid);
    }
    let mut tasks = Vec::new();
    for (i, uuid) in uuids.iter().enumerate() {
        // Writer A: status/task_state/status_detail rounds on its own object.
        let (s, u) = (store.clone(), uuid.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = s.container_get(&u).await.unwrap().unwrap();
            for r in 0..ROUNDS {
                c.set("task_state", json!("container_starting"));
                c.set("status_detail", json!(format!("round {r}")));
                s.container_save(&mut c).await.unwrap();
                c.set("task_state", Value::Null);
                c.set("status", json!(if r % 2 == 0 { "Running" } else { "Stopped" }));
                s.container_save(&mut c).await.unwrap();
            }
        }));
        // Writer B on the same row with a separately loaded object (like zun-api): other fields.
        let (s, u) = (store.clone(), uuid.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = s.container_get(&u).await.unwrap().unwrap();
            for r in 0..ROUNDS {
                c.set("websocket_token", json!(format!("tok-{i}-{r}")));
                c.set("host", json!(format!("host-{}", i % 3)));
                s.container_save(&mut c).await.unwrap();
            }
        }));
    }
    // Meanwhile, claims on the compute node.
    let mut rec = node_record("par-node");
    rec.mem_used = 0;
    rec.mem_free = rec.mem_total;
    store.compute_node_upsert(&rec).await.unwrap();
    for _ in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.compute_node_add_usage("par-node", 0.5, 64, 10, 1).await.unwrap();
        }));
    }
    let deadline = std::time::Duration::from_secs(120);
    tokio::time::timeout(deadline, async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("concurrent writers finished within the deadline (no deadlock)");

    for (i, uuid) in uuids.iter().enumerate() {
        let row = db
            .raw_row("container", &["status", "task_state", "status_detail", "websocket_token", "host"], &format!("`uuid`='{uuid}'"))
            .await;
        assert_eq!(row["status"].as_deref(), Some("Stopped"));
        assert_eq!(row["task_state"], None);
        assert_eq!(row["status_detail"], Some(format!("round {}", ROUNDS - 1)));
        assert_eq!(row["websocket_token"], Some(format!("tok-{i}-{}", ROUNDS - 1)));
        assert_eq!(row["host"], Some(format!("host-{}", i % 3)));
    }
    let n = store.compute_node_get("par-node").await.unwrap().unwrap();
    assert_eq!(n.running_containers, 20);
    assert_eq!(n.mem_used, 20 * 64);
    assert_eq!(n.disk_used, 200);
    assert!((n.cpu_used - 10.0).abs() < 1e-6, "{}", n.cpu_used);
}

/// The heartbeat: registration (0 then 1), increments, last_seen_up / updated_at.
pub async fn heartbeat(db: &TestDb, store: &Store) {
    assert!(store.service_get(HOST, "zun-compute").await.unwrap().is_none());
    let r1 = store.service_heartbeat(HOST, "zun-compute", "nova").await.unwrap();
    assert_eq!(r1.report_count, 1);
    assert_eq!(r1.host.as_deref(), Some(HOST));
    assert_eq!(r1.binary.as_deref(), Some("zun-compute"));
    assert_eq!(r1.availability_zone.as_deref(), Some("nova"));
    assert!(!r1.disabled && !r1.forced_down);
    assert!(r1.last_seen_up.is_some() && r1.created_at.is_some() && r1.updated_at.is_some());
    let raw = db
        .raw_row("zun_service", &["report_count", "disabled", "forced_down", "disabled_reason", "last_seen_up"], "`host`='realnode'")
        .await;
    assert_eq!(raw["report_count"].as_deref(), Some("1"));
    assert_eq!(raw["disabled"].as_deref(), Some("0"));
    assert_eq!(raw["forced_down"].as_deref(), Some("0"));
    assert_eq!(raw["disabled_reason"], None);
    let r2 = store.service_heartbeat(HOST, "zun-compute", "nova").await.unwrap();
    assert_eq!(r2.report_count, 2);
    assert_eq!(r2.id, r1.id);
    assert_eq!(r2.created_at, r1.created_at);
    assert!(r2.last_seen_up >= r1.last_seen_up);
    assert_eq!(store.service_get(HOST, "zun-compute").await.unwrap(), Some(r2));
    assert_eq!(db.count("zun_service", "1=1").await, 1);
}

pub fn node_record(hostname: &str) -> ComputeNodeRecord {
    ComputeNodeRecord {
        hostname: hostname.into(),
        numa_topology: json!({"nodes": []}),
        mem_total: 24105,
        mem_free: 22533,
        mem_available: 23292,
        mem_used: 812,
        cpus: 2,
        cpu_used: 0.0,
        architecture: Some("x86_64".into()),
        os_type: Some("linux".into()),
        os: Some("Debian GNU/Linux 12 (bookworm)".into()),
        kernel_version: Some("6.18.44-fc-v669".into()),
        disk_total: 16,
        disk_quota_supported: true,
        runtimes: vec!["io.containerd.runc.v2".into(), "io.containerd.runtime.v1.linux".into(), "runc".into()],
        ..Default::default()
    }
}

/// compute_node: insert once, update on change, claims, release, audit.
pub async fn compute_node(db: &TestDb, store: &Store, host: &str) {
    assert!(store.compute_node_get(host).await.unwrap().is_none());
    let rec = node_record(host);
    let n1 = store.compute_node_upsert(&rec).await.unwrap();
    assert_eq!(n1.uuid.len(), 36);
    assert_eq!(n1.rp_uuid, n1.uuid);
    assert!(n1.created_at.is_some());
    assert_eq!(n1.updated_at, None);
    let raw = db
        .raw_row(
            "compute_node",
            &["numa_topology", "labels", "runtimes", "pci_stats", "disk_quota_supported", "enable_cpu_pinning", "cpu_used", "mem_used"],
            &format!("`hostname`='{host}'"),
        )
        .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(raw["numa_topology"], s(r#"{"nodes": []}"#));
    assert_eq!(raw["labels"], s("{}"));
    assert_eq!(raw["runtimes"], s(r#"["io.containerd.runc.v2", "io.containerd.runtime.v1.linux", "runc"]"#));
    assert_eq!(raw["pci_stats"], None);
    assert_eq!(raw["disk_quota_supported"], s("1"));
    assert_eq!(raw["enable_cpu_pinning"], s("0"));
    assert_eq!(raw["cpu_used"].as_deref().and_then(|v| v.parse::<f64>().ok()), Some(0.0));
    assert_eq!(raw["mem_used"], s("812"));

    // Same values: no write.
    let n2 = store.compute_node_upsert(&rec).await.unwrap();
    assert_eq!(n2.updated_at, None);
    // Changed values: updated, same uuid.
    let mut rec2 = rec.clone();
    rec2.uuid = new_uuid(); // ignored for an existing row
    rec2.mem_available = 20000;
    rec2.labels.insert("zone".into(), json!("a"));
    let n3 = store.compute_node_upsert(&rec2).await.unwrap();
    assert_eq!(n3.uuid, n1.uuid);
    assert_eq!(n3.mem_available, 20000);
    assert!(n3.updated_at.is_some());
    assert_eq!(db.count("compute_node", "1=1").await, 1);

    // Claim: like the real zun-compute's create (cpu 0.5, 64 MB, 10 GB).
    store.compute_node_add_usage(host, 0.5, 64, 10, 1).await.unwrap();
    let n4 = store.compute_node_get(host).await.unwrap().unwrap();
    assert_eq!((n4.mem_used, n4.mem_free, n4.disk_used, n4.running_containers), (876, 24105 - 876, 10, 1));
    assert!((n4.cpu_used - 0.5).abs() < 1e-9);
    store.compute_node_add_usage(host, -0.5, -64, -10, -1).await.unwrap();
    let n5 = store.compute_node_get(host).await.unwrap().unwrap();
    assert_eq!((n5.mem_used, n5.mem_free, n5.disk_used, n5.running_containers), (812, 24105 - 812, 0, 0));
    assert_eq!(n5.cpu_used, 0.0);
    store.compute_node_add_usage(host, -2.0, -10_000, -5, -3).await.unwrap();
    let n6 = store.compute_node_get(host).await.unwrap().unwrap();
    assert_eq!((n6.mem_used, n6.disk_used, n6.running_containers), (0, 0, 0));
    assert_eq!(n6.cpu_used, 0.0);
    assert!(matches!(store.compute_node_add_usage("nowhere", 1.0, 1, 1, 1).await, Err(StoreError::ComputeNodeNotFound { .. })));

    // Audit from the host's container rows.
    for (mem, cpu, disk) in [("64", 0.5, 10), ("128", 1.0, 0)] {
        let mut c = new_container(&new_uuid(), "audited");
        c.data.insert("host".into(), json!(host));
        c.data.insert("memory".into(), json!(mem));
        c.data.insert("cpu".into(), serde_json::from_str(&format!("{cpu:?}")).unwrap());
        c.data.insert("disk".into(), json!(disk));
        store.container_save(&mut c).await.unwrap();
    }
    let n7 = store.compute_node_recompute_usage(host).await.unwrap();
    assert_eq!((n7.mem_used, n7.mem_free, n7.disk_used, n7.running_containers), (192, 24105 - 192, 10, 2));
    assert!((n7.cpu_used - 1.5).abs() < 1e-9);
}

/// exec_instance and image writes.
pub async fn exec_and_image(db: &TestDb, store: &Store) {
    let uuid = new_uuid();
    let mut c = new_container(&uuid, "execd");
    store.container_save(&mut c).await.unwrap();
    let id = c.get("id").and_then(Value::as_i64).unwrap();
    store.exec_instance_insert(id, "abc123", Some("tcp://10.0.0.1:2375"), Some("tok-1")).await.unwrap();
    assert!(matches!(store.exec_instance_insert(id, "abc123", None, None).await, Err(StoreError::Duplicate { .. })));
    let e = db.raw_row("exec_instance", &["exec_id", "url", "token", "created_at"], &format!("`container_id`={id}")).await;
    assert_eq!(e["url"].as_deref(), Some("tcp://10.0.0.1:2375"));
    assert!(e["created_at"].is_some());

    let img = new_uuid();
    db.raw_exec(&format!(
        "INSERT INTO `image` (`uuid`, `repo`, `tag`, `host`, `project_id`) VALUES ('{img}', 'busybox', 'latest', '{HOST}', 'p')"
    ))
    .await;
    store.image_update(&img, "busybox", "latest", "sha256:abcdef", 4_261_550).await.unwrap();
    let r = db.raw_row("image", &["image_id", "size", "updated_at"], &format!("`uuid`='{img}'")).await;
    assert_eq!(r["image_id"].as_deref(), Some("sha256:abcdef"));
    assert_eq!(r["size"].as_deref(), Some("4261550"));
    assert!(r["updated_at"].is_some());
    store.image_delete(&img).await.unwrap();
    assert!(matches!(store.image_delete(&img).await, Err(StoreError::ImageNotFound { .. })));
    assert!(matches!(store.image_update(&img, "busybox", "latest", "sha256:x", 1).await, Err(StoreError::ImageNotFound { .. })));
}

/// check_schema names exactly the missing columns.
pub async fn schema_check_names_missing(db: &TestDb, store: &Store) {
    store.check_schema().await.unwrap();
    db.raw_exec("ALTER TABLE `container` DROP COLUMN `cni_metadata`").await;
    db.raw_exec("ALTER TABLE `zun_service` DROP COLUMN `last_seen_up`").await;
    match store.check_schema().await {
        Err(StoreError::SchemaMissing { missing }) => {
            assert_eq!(missing, vec!["container.cni_metadata".to_string(), "zun_service.last_seen_up".to_string()]);
        }
        other => panic!("expected SchemaMissing, got {other:?}"),
    }
}
