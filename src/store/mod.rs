//! The state store: the only module that writes SQL.
//!
//! It writes zun's own database the way zun-compute 18.0.0 does (zun-api reads it back
//! through `zun.objects`), on one of two backends:
//! - **MySQL/MariaDB** through `[database] connection` from zun.conf (oslo form
//!   `mysql+pymysql://user:pass@host/zun?charset=utf8` accepted as is). The schema belongs to
//!   zun (`zun-db-manage upgrade`); the store never creates or migrates it, and
//!   [`Store::check_schema`] names any missing table/column at start.
//! - **SQLite**, an embedded file created with `schemas/sqlite.sql` when no connection is
//!   configured (standalone use).
//!
//! Conventions copied from zun (see `container.rs` for the container mapping): naive UTC
//! DATETIMEs with whole seconds set by the writer (`created_at` on INSERT, `updated_at` on
//! every UPDATE), JSON columns as Python `json.dumps` text, booleans 0/1, ORM defaults supplied
//! on INSERT, `SELECT ... FOR UPDATE` before read-modify-write on MySQL (SQLite write
//! transactions are `BEGIN IMMEDIATE`), deadlocks and lost connections retried like oslo.db's
//! `wrap_db_retry` (`retry`: what is retried, the `[database] db_*` pauses). Every operation
//! that writes several rows does so in one transaction: a failure (or a retry) never leaves
//! half of it applied.
//!
//! A lost connection: the pool pings a connection before handing it out when it has been
//! idle a second or more (`pool::Liveness`; one used moments ago is not pinged, which
//! saves a round trip on most acquires), and pings every connection for a while after any
//! operation found one lost, so a restarted MariaDB costs the dead connections only; a new
//! one is opened, waiting out "connection refused" up to the acquire timeout. An
//! operation that meets a dead connection is retried (`retry`); the readiness ping tries
//! twice.
//!
//! Files: `url` (connection URLs), `sql` (backend dispatch), `retry` (retry classes and
//! pauses), `pool` (`[database]` pool options), `schema` (required columns, DDL),
//! `pyjson` (Python-compatible JSON text), `container` (row <-> object), `ops_*` (the
//! operations, grouped by table).
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Executor;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

pub mod container;
mod ops_actions;
mod ops_compute_node;
mod ops_container;
mod ops_misc;
mod ops_network;
mod ops_service;
mod ops_volume;
pub mod pool;
pub mod pyjson;
pub mod retry;
pub mod schema;
mod sql;
pub mod url;

pub use ops_compute_node::ComputeNodeRecord;
pub use ops_network::NetworkRow;
pub use ops_service::ServiceRow;
pub use ops_volume::{NewVolumeMapping, VolumeMappingRow, VolumeRow};

use sql::Db;

/// Errors of the store. Each names the table (and column / key) involved; none carries
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid database connection URL: {0}")]
    BadUrl(String),
    #[error("cannot set up TLS to database {target}, as the connection URL asks: {reason}")]
    Tls { target: String, reason: String },
    #[error("cannot open database {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database error on table {table}: {source}")]
    Db {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database is missing what zun-compute-rs needs (is it zun's schema, upgraded with \
         `zun-db-manage upgrade`?): {}",
        missing.join(", ")
    )]
    SchemaMissing { missing: Vec<String> },
    #[error("container {uuid}: field {field} cannot be stored: {reason}; nothing was written")]
    InvalidField { uuid: String, field: String, reason: String },
    #[error("invalid object: {0}")]
    InvalidObject(String),
    #[error("Container {uuid} could not be found (table container)")]
    ContainerNotFound { uuid: String },
    #[error("Action for request_id {request_id} on container {container_uuid} not found (table container_actions)")]
    ContainerActionNotFound { container_uuid: String, request_id: String },
    #[error("Event {event} not found for action id {action_id} (table container_actions_events)")]
    ContainerActionEventNotFound { action_id: i64, event: String },
    #[error(
        "finishing action {action} (request_id {request_id}) of container {container_uuid} matched \
         {matched} rows of container_actions, expected exactly 1"
    )]
    ActionNotFound { container_uuid: String, request_id: String, action: String, matched: u64 },
    #[error("zun_service for host {host} binary {binary} not found")]
    ZunServiceNotFound { host: String, binary: String },
    #[error("compute_node with hostname {hostname} not found")]
    ComputeNodeNotFound { hostname: String },
    #[error("image {image} not found (table image)")]
    ImageNotFound { image: String },
    #[error("{table}: a row with {detail} already exists")]
    Duplicate { table: String, detail: String },
    #[error("table {table}, column {column}, row {key}: stored value is invalid: {reason}")]
    CorruptRow { table: &'static str, column: String, key: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub(crate) fn db(table: &str, source: sqlx::Error) -> Self {
        StoreError::Db { table: table.to_string(), source }
    }

    /// Why a retry may cure this error (see [`retry`]), if it may.
    pub fn retry_cause(&self) -> Option<retry::Cause> {
        match self {
            StoreError::Db { source, .. } => retry::cause(source),
            _ => None,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Now, naive UTC, whole seconds (MariaDB truncates DATETIME; this keeps SQLite identical).
pub(crate) fn now() -> NaiveDateTime {
    secs(Utc::now().naive_utc())
}

/// Drops the sub-second part.
pub(crate) fn secs(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

/// oslo `DateTimeField` wire form: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn time_to_wire(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a wire datetime (ISO 8601 with `Z`/offset, or naive), to naive UTC seconds.
pub fn time_from_wire(s: &str) -> Option<NaiveDateTime> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(secs(t.with_timezone(&Utc).naive_utc()));
    }
    let s = s.trim_end_matches('Z');
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(secs)
}

/// The state store. Cheap to share as `Arc<Store>`; every method is safe to call concurrently.
#[derive(Debug)]
pub struct Store {
    db: Db,
    /// Where the data lives, without credentials (for logs).
    target: String,
    /// `[database] db_*`: how an operation is retried.
    retry: retry::RetryPolicy,
    /// When the MySQL pool pings connections before use (unused on SQLite).
    liveness: pool::Liveness,
}

impl Store {
    /// Opens the store.
    ///
    /// `database_url` is zun.conf's `[database] connection` (`mysql+pymysql://`, `mysql://`,
    /// `mariadb://` or `sqlite://path`); `None` opens (creating if needed) the SQLite file at
    /// `sqlite_path` with the embedded schema. MySQL connections use charset utf8 and
    /// `sql_mode=TRADITIONAL`, like oslo.db.
    pub async fn connect(database_url: Option<&str>, sqlite_path: &Path) -> Result<Store> {
        Self::connect_with_pool(database_url, sqlite_path, &pool::PoolSettings::default()).await
    }

    /// Like [`Store::connect`], with the MySQL pool sized and timed by `pool`
    /// (`[database] max_pool_size`, `max_overflow`, `pool_timeout`,
    /// `connection_recycle_time`); the SQLite pool is fixed.
    pub async fn connect_with_pool(database_url: Option<&str>, sqlite_path: &Path, pool: &pool::PoolSettings) -> Result<Store> {
        let target = match database_url.map(str::trim).filter(|s| !s.is_empty()) {
            Some(u) => url::parse(u)?,
            None => url::DbTarget::Sqlite(sqlite_path.to_path_buf()),
        };
        match target {
            url::DbTarget::MySql { options, display, tls } => {
                let liveness = pool::Liveness::default();
                let check = liveness.clone();
                let pool = MySqlPoolOptions::new()
                    .max_connections(pool.max_connections)
                    .min_connections(0)
                    .acquire_timeout(pool.acquire_timeout)
                    .max_lifetime(pool.max_lifetime)
                    .idle_timeout(Some(pool.idle_timeout))
                    // A connection MariaDB dropped (restart, wait_timeout) is found here and
                    // replaced, not handed to an operation: one idle for a second or more,
                    // or any while a connection was lost recently (`pool::Liveness`). An
                    // error closes the connection and the pool hands out another.
                    .test_before_acquire(false)
                    .before_acquire(move |conn, meta| {
                        let ping = check.should_ping(meta.idle_for);
                        Box::pin(async move {
                            if ping {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET SESSION sql_mode = 'TRADITIONAL'").await?;
                            Ok(())
                        })
                    })
                    .connect_with(*options)
                    .await
                    .map_err(|source| match source {
                        // Asked for and impossible (no TLS on the server, a certificate
                        // that does not verify): refused, never retried in plaintext.
                        sqlx::Error::Tls(e) if tls => StoreError::Tls { target: display.clone(), reason: e.to_string() },
                        source => StoreError::Connect { target: display.clone(), source },
                    })?;
                let shown = &display;
                tracing::info!(db = %shown, "state store: MySQL");
                Ok(Store { db: Db::My(pool), target: display, retry: retry::RetryPolicy::default(), liveness })
            }
            url::DbTarget::Sqlite(path) => Self::open_sqlite(&path).await,
        }
    }

    async fn open_sqlite(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let display = format!("sqlite:{}", path.display());
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { target: display.clone(), source })?;
        sqlx::raw_sql(schema::SQLITE_DDL).execute(&pool).await.map_err(|source| StoreError::Connect { target: display.clone(), source })?;
        let shown = &display;
        tracing::info!(db = %shown, "state store: SQLite");
        Ok(Store { db: Db::Lite(pool), target: display, retry: retry::RetryPolicy::default(), liveness: pool::Liveness::default() })
    }

    /// Sets how operations are retried (`[database] db_*`; oslo.db's defaults until then).
    pub fn with_retry_policy(mut self, policy: retry::RetryPolicy) -> Store {
        self.retry = policy;
        self
    }

    /// `SELECT 1`: is the database answering now? (Readiness.) A connection recently used
    /// is handed out without a ping, so when the first try meets a dead one (MariaDB
    /// restarted) the pool is told and the second try gets a tested or a new connection.
    /// No pause, no further retry.
    pub async fn ping(&self) -> Result<()> {
        let once =
            || async { self.db.fetch("SELECT 1", &[], &[sql::Kind::Int]).await.map(|_| ()).map_err(|e| StoreError::db("(ping)", e)) };
        match once().await {
            Err(e) if e.retry_cause() == Some(retry::Cause::Disconnect) => {
                self.liveness.connection_lost();
                once().await
            }
            r => r,
        }
    }

    /// `mysql` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        if self.db.is_mysql() {
            "mysql"
        } else {
            "sqlite"
        }
    }

    /// Where the data lives (`user@host:port/db` or `sqlite:path`), safe to log.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Verifies that every table and column the worker needs exists; the error lists exactly
    /// the missing ones. On MySQL also reads `alembic_version` and warns (without failing)
    /// when it is not zun 18.0.0's head `3f2b36231bee`.
    pub async fn check_schema(&self) -> Result<()> {
        let missing = schema::missing_columns(&self.db).await?;
        if self.db.is_mysql() {
            match schema::alembic_version(&self.db).await {
                Some(v) if v == schema::ALEMBIC_HEAD => {}
                Some(v) => tracing::warn!(
                    found = %v,
                    expected = schema::ALEMBIC_HEAD,
                    "zun schema revision differs from zun 18.0.0's; continuing"
                ),
                None => {
                    tracing::warn!(expected = schema::ALEMBIC_HEAD, "no alembic_version row: this database was not built by zun-db-manage")
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::SchemaMissing { missing })
        }
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.db.close().await
    }

    /// Runs `op`, and again after a deadlock, a lock wait timeout, SQLite busy or a lost
    /// connection, with oslo.db's pauses (`[database] db_*`, see [`retry`]). `op` must be
    /// the whole operation: a transaction it began is rolled back when it fails.
    pub(crate) async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        use backon::Retryable;
        let target = &self.target;
        let out = (|| op())
            .retry(self.retry.backoff())
            .when(|e: &StoreError| e.retry_cause().is_some())
            .notify(|e, pause| match e.retry_cause() {
                Some(retry::Cause::Disconnect) => {
                    self.liveness.connection_lost();
                    tracing::warn!(db = %target, error = %e, retry_in_ms = pause.as_millis() as u64,
                        "database connection lost or refused; retrying")
                }
                _ => tracing::debug!(error = %e, retry_in_ms = pause.as_millis() as u64, "database deadlock/busy; retrying"),
            })
            .await;
        if let Err(e) = &out {
            if e.retry_cause().is_some() {
                tracing::warn!(db = %target, error = %e, retries = self.retry.max_retries, "database operation failed after every retry");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_times() {
        let t = time_from_wire("2026-11-28T14:02:20Z").unwrap();
        assert_eq!(time_to_wire(t), "2026-11-28T14:02:20Z");
        assert_eq!(time_to_wire(time_from_wire("2026-11-28T14:02:20.987654").unwrap()), "2026-11-28T14:02:20Z");
        assert_eq!(time_to_wire(time_from_wire("2026-11-28T16:02:20+02:00").unwrap()), "2026-11-28T14:02:20Z");
        assert!(time_from_wire("yesterday").is_none());
    }
}
