//! The state store on its embedded SQLite backend: every write, with the exact column text.
mod store_common;

use std::sync::Arc;
use store_common::{scenarios, TestDb};
use zun_compute_rs::store::Store;

async fn setup() -> (TestDb, Store) {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    assert_eq!(store.backend(), "sqlite");
    (db, store)
}

#[tokio::test]
async fn sqlite_container_insert_and_read() {
    let (db, s) = setup().await;
    scenarios::container_insert_and_read(&db, &s).await;
}

#[tokio::test]
async fn sqlite_container_insert_defaults() {
    let (db, s) = setup().await;
    scenarios::container_insert_defaults(&db, &s).await;
}

#[tokio::test]
async fn sqlite_compute_create_flow() {
    let (db, s) = setup().await;
    scenarios::compute_create_flow(&db, &s).await;
}

#[tokio::test]
async fn sqlite_actions_lookup() {
    let (db, s) = setup().await;
    scenarios::actions_lookup(&db, &s).await;
}

#[tokio::test]
async fn sqlite_delete_flow() {
    let (db, s) = setup().await;
    scenarios::delete_flow(&db, &s).await;
}

#[tokio::test]
async fn sqlite_bad_input() {
    let (db, s) = setup().await;
    scenarios::bad_input(&db, &s).await;
}

#[tokio::test]
async fn sqlite_four_byte_utf8() {
    let (db, s) = setup().await;
    scenarios::four_byte_utf8(&db, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrency() {
    let (db, s) = setup().await;
    scenarios::concurrency(&db, Arc::new(s)).await;
}

#[tokio::test]
async fn sqlite_heartbeat() {
    let (db, s) = setup().await;
    scenarios::heartbeat(&db, &s).await;
}

#[tokio::test]
async fn sqlite_compute_node() {
    let (db, s) = setup().await;
    scenarios::compute_node(&db, &s, "realnode").await;
}

#[tokio::test]
async fn sqlite_exec_and_image() {
    let (db, s) = setup().await;
    scenarios::exec_and_image(&db, &s).await;
}

#[tokio::test]
async fn sqlite_schema_check_names_missing() {
    let (db, s) = setup().await;
    scenarios::schema_check_names_missing(&db, &s).await;
}

/// Re-opening an existing file keeps the data (the DDL is idempotent); `sqlite://` URLs work.
#[tokio::test]
async fn sqlite_reopen_and_url() {
    let (db, s) = setup().await;
    s.service_heartbeat("h1", "zun-compute", "nova").await.unwrap();
    s.close().await;
    let url = format!("sqlite://{}", db.sqlite_path.display());
    let s2 = Store::connect(Some(&url), std::path::Path::new("/nonexistent/ignored.db")).await.unwrap();
    s2.check_schema().await.unwrap();
    assert_eq!(s2.service_heartbeat("h1", "zun-compute", "nova").await.unwrap().report_count, 2);
}
