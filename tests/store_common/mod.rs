//! Test support for the state store: a private database per test (SQLite file in a temp dir,
//! or a MariaDB database `zunrs_t_<random>` whose schema is built by zun's own
//! `zun-db-manage upgrade` from the conformance venv), raw SQL access to check exact column
//! encodings, and the Python read-back through the real zun 18.0.0 objects.
//!
//! Environment:
//! - `ZUN_RS_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`): server URL without database.
//! - `ZUN_RS_VENV` (default `/var/tmp/zun-rs/venv`): venv with `zun==18.0.0` and `pymysql`
//!   (created by `scripts/conformance-venv.sh`).
#![allow(dead_code)]

use serde_json::Value;
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::process::Command;
use zun_compute_rs::oslo::{Container, ObjectPrimitive};
use zun_compute_rs::store::Store;

pub fn mysql_server_url() -> String {
    std::env::var("ZUN_RS_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_string())
}

pub fn venv() -> PathBuf {
    PathBuf::from(std::env::var("ZUN_RS_VENV").unwrap_or_else(|_| "/var/tmp/zun-rs/venv".to_string()))
}

fn require_venv() -> PathBuf {
    let v = venv();
    let tool = v.join("bin/zun-db-manage");
    assert!(
        tool.exists(),
        "{} is missing: the MariaDB store tests build zun's schema with zun's own zun-db-manage. \
         Run `bash scripts/conformance-venv.sh` (or point ZUN_RS_VENV at a venv with zun==18.0.0 and pymysql).",
        tool.display()
    );
    v
}

/// Which backend a test database uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backend {
    Sqlite,
    MariaDb,
}

/// A private database for one test; dropped (MariaDB) / deleted (SQLite) at the end.
pub struct TestDb {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    /// `[database] connection` for the store (None for SQLite).
    pub url: Option<String>,
    /// The oslo URL zun's Python code uses (MariaDB only).
    pub oslo_url: Option<String>,
    pub sqlite_path: PathBuf,
    mysql_name: Option<String>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite_path = dir.path().join("state/zun.db");
        TestDb { backend: Backend::Sqlite, dir, url: None, oslo_url: None, sqlite_path, mysql_name: None }
    }

    /// Creates `zunrs_t_<random>` and builds zun's schema in it with `zun-db-manage upgrade`.
    pub async fn mariadb() -> TestDb {
        let venv = require_venv();
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("zunrs_t_{}", uuid::Uuid::new_v4().simple());
        let server = mysql_server_url();
        let mut conn = sqlx::MySqlConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach MariaDB at {server} ({e}); run `bash scripts/services.sh`"));
        sqlx::query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8")).execute(&mut conn).await.expect("create database");
        conn.close().await.ok();
        let rest = server.split_once("://").map(|(_, r)| r).unwrap_or(&server).trim_end_matches('/');
        let oslo_url = format!("mysql+pymysql://{rest}/{name}?charset=utf8");
        let conf = dir.path().join("zun-db.conf");
        std::fs::write(&conf, format!("[DEFAULT]\nhost = testhost\n[database]\nconnection = {oslo_url}\n")).unwrap();
        let mut db = TestDb {
            backend: Backend::MariaDb,
            sqlite_path: dir.path().join("unused.db"),
            dir,
            url: Some(oslo_url.clone()),
            oslo_url: Some(oslo_url),
            mysql_name: Some(name),
        };
        let out = Command::new(venv.join("bin/zun-db-manage"))
            .arg("--config-file")
            .arg(&conf)
            .arg("upgrade")
            .output()
            .expect("run zun-db-manage");
        if !out.status.success() {
            db.drop_now();
            panic!("zun-db-manage upgrade failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        db
    }

    pub async fn open(&self) -> Store {
        let store = Store::connect(self.url.as_deref(), &self.sqlite_path).await.expect("Store::connect");
        store.check_schema().await.expect("check_schema");
        store
    }

    /// Opens the store without the schema check.
    pub async fn open_unchecked(&self) -> Store {
        Store::connect(self.url.as_deref(), &self.sqlite_path).await.expect("Store::connect")
    }

    /// `CAST(col AS text)` on this backend.
    fn text(&self, col: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("CAST(`{col}` AS TEXT)"),
            Backend::MariaDb => format!("CAST(`{col}` AS CHAR)"),
        }
    }

    /// The named columns of the rows matching `where_sql`, as the text the database holds.
    pub async fn raw_rows(&self, table: &str, cols: &[&str], where_sql: &str) -> Vec<Vec<Option<String>>> {
        let list: Vec<String> = cols.iter().map(|c| self.text(c)).collect();
        let sql = format!("SELECT {} FROM `{table}` WHERE {where_sql} ORDER BY 1", list.join(", "));
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.sqlite_path.display())).await.unwrap();
                let rows = sqlx::query(&sql).fetch_all(&mut c).await.unwrap();
                rows.iter().map(|r| (0..cols.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
            }
            Backend::MariaDb => {
                let mut c = sqlx::MySqlConnection::connect(&self.mysql_db_url()).await.unwrap();
                let rows = sqlx::query(&sql).fetch_all(&mut c).await.unwrap();
                rows.iter().map(|r| (0..cols.len()).map(|i| r.get::<Option<String>, _>(i)).collect()).collect()
            }
        }
    }

    /// One row as a map column -> text.
    pub async fn raw_row(&self, table: &str, cols: &[&str], where_sql: &str) -> std::collections::BTreeMap<String, Option<String>> {
        let rows = self.raw_rows(table, cols, where_sql).await;
        assert_eq!(rows.len(), 1, "expected one {table} row where {where_sql}, got {}", rows.len());
        cols.iter().map(|c| c.to_string()).zip(rows.into_iter().next().unwrap()).collect()
    }

    pub async fn raw_exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.sqlite_path.display())).await.unwrap();
                sqlx::query("PRAGMA foreign_keys = ON").execute(&mut c).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            Backend::MariaDb => {
                let mut c = sqlx::MySqlConnection::connect(&self.mysql_db_url()).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    pub async fn count(&self, table: &str, where_sql: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM `{table}` WHERE {where_sql}");
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.sqlite_path.display())).await.unwrap();
                sqlx::query(&sql).fetch_one(&mut c).await.unwrap().get::<i64, _>(0)
            }
            Backend::MariaDb => {
                let mut c = sqlx::MySqlConnection::connect(&self.mysql_db_url()).await.unwrap();
                sqlx::query(&sql).fetch_one(&mut c).await.unwrap().get::<i64, _>(0)
            }
        }
    }

    /// `mysql://root@host:port/<this database>` (MariaDB only).
    pub fn mysql_db_url(&self) -> String {
        format!("{}/{}", mysql_server_url().trim_end_matches('/'), self.mysql_name.as_deref().unwrap_or(""))
    }

    /// Writes a zun.conf for the Python read-back (MariaDB only).
    pub fn python_conf(&self, host: &str, service_down_time: u32) -> PathBuf {
        let p = self.dir.path().join(format!("zun-{host}-{service_down_time}.conf"));
        std::fs::write(
            &p,
            format!(
                "[DEFAULT]\nhost = {host}\nservice_down_time = {service_down_time}\n[database]\nconnection = {}\n",
                self.oslo_url.as_deref().expect("python read-back needs MariaDB")
            ),
        )
        .unwrap();
        p
    }

    fn drop_now(&mut self) {
        if let Some(name) = self.mysql_name.take() {
            // Drop from a separate thread with its own runtime: works from Drop and after a panic.
            let server = mysql_server_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::MySqlConnection::connect(&server).await {
                        // The test's own pool may still hold idle connections (their release
                        // task cannot run while this Drop blocks the test runtime): end them so
                        // DROP DATABASE does not wait on their metadata locks.
                        let ids: Vec<i64> =
                            sqlx::query_scalar("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ?")
                                .bind(&name)
                                .fetch_all(&mut c)
                                .await
                                .unwrap_or_default();
                        for id in ids {
                            let _ = sqlx::query(&format!("KILL CONNECTION {id}")).execute(&mut c).await;
                        }
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut c).await;
                        let _ = c.close().await;
                    }
                })
            })
            .join();
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_now();
    }
}

/// Runs tests/conformance/store_readback.py in the venv and parses its JSON output.
pub fn readback(conf: &Path, args: &[&str]) -> Value {
    let venv = require_venv();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/store_readback.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg("--config-file")
        .arg(conf)
        .args(args)
        .output()
        .expect("run store_readback.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "store_readback.py {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON from store_readback.py ({e}): {stdout}"))
}

/// The `container` argument of a golden RPC fixture, as a Container object.
pub fn fixture_container(name: &str) -> Container {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oslo").join(format!("{name}.json"));
    let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let msg = f["body_decoded"]["envelope"]["oslo.message"].as_str().unwrap();
    let msg: Value = serde_json::from_str(msg).unwrap();
    Container::from_primitive(ObjectPrimitive::from_value(&msg["args"]["container"]).unwrap()).unwrap()
}

/// A container object like zun-api builds it before `create()`, with a fresh uuid.
pub fn new_container(uuid: &str, name: &str) -> Container {
    let mut c = fixture_container("container_create_cast");
    c.data.insert("uuid".into(), Value::String(uuid.into()));
    c.data.insert("name".into(), Value::String(name.into()));
    c.data.remove("id");
    c
}

pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
pub mod scenarios;
