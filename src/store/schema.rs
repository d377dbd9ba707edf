//! The part of zun's schema the worker relies on, and the start-up check against it.
//!
//! The worker never creates or migrates zun's MySQL schema (zun-db-manage does); it only
//! verifies that every table and column it reads or writes exists, and names exactly the
//! missing ones. On SQLite the embedded `schemas/sqlite.sql` (derived from zun's MySQL dump)
//! is applied with `CREATE TABLE IF NOT EXISTS` when the store opens.
use super::sql::{Db, Kind, Val};
use super::StoreError;

/// zun 18.0.0's alembic head ("add host to ZunNetwork").
pub const ALEMBIC_HEAD: &str = "3f2b36231bee";

/// SQLite DDL for the tables the worker touches.
pub const SQLITE_DDL: &str = include_str!("../../schemas/sqlite.sql");

/// Every table the worker touches and the columns it needs in each.
pub const REQUIRED: &[(&str, &[&str])] = &[
    (
        "container",
        &[
            "id",
            "uuid",
            "container_type",
            "created_at",
            "updated_at",
            "project_id",
            "user_id",
            "name",
            "image",
            "command",
            "status",
            "environment",
            "container_id",
            "memory",
            "task_state",
            "cpu",
            "workdir",
            "ports",
            "hostname",
            "labels",
            "status_reason",
            "image_pull_policy",
            "addresses",
            "host",
            "restart_policy",
            "status_detail",
            "image_driver",
            "interactive",
            "websocket_url",
            "websocket_token",
            "security_groups",
            "auto_remove",
            "runtime",
            "disk",
            "auto_heal",
            "capsule_id",
            "started_at",
            "privileged",
            "healthcheck",
            "exposed_ports",
            "cpu_policy",
            "cpuset",
            "registry_id",
            "tty",
            "annotations",
            "cni_metadata",
            "entrypoint",
        ],
    ),
    (
        "container_actions",
        &[
            "id",
            "created_at",
            "updated_at",
            "action",
            "container_uuid",
            "request_id",
            "user_id",
            "project_id",
            "start_time",
            "finish_time",
            "message",
        ],
    ),
    (
        "container_actions_events",
        &["id", "created_at", "updated_at", "event", "action_id", "start_time", "finish_time", "result", "traceback"],
    ),
    (
        "zun_service",
        &[
            "id",
            "created_at",
            "updated_at",
            "report_count",
            "host",
            "binary",
            "disabled",
            "disabled_reason",
            "last_seen_up",
            "forced_down",
            "availability_zone",
        ],
    ),
    (
        "compute_node",
        &[
            "uuid",
            "rp_uuid",
            "created_at",
            "updated_at",
            "hostname",
            "numa_topology",
            "mem_total",
            "mem_free",
            "mem_available",
            "mem_used",
            "total_containers",
            "running_containers",
            "paused_containers",
            "stopped_containers",
            "cpus",
            "cpu_used",
            "architecture",
            "os_type",
            "os",
            "kernel_version",
            "labels",
            "pci_stats",
            "disk_total",
            "disk_used",
            "disk_quota_supported",
            "runtimes",
            "enable_cpu_pinning",
        ],
    ),
    ("network", &["id", "created_at", "updated_at", "uuid", "project_id", "user_id", "name", "network_id", "neutron_net_id", "host"]),
    ("exec_instance", &["id", "created_at", "updated_at", "container_id", "exec_id", "token", "url"]),
    ("image", &["id", "created_at", "updated_at", "uuid", "project_id", "user_id", "image_id", "repo", "tag", "size", "host"]),
    (
        "volume_mapping",
        &["id", "created_at", "updated_at", "uuid", "project_id", "user_id", "container_uuid", "container_path", "volume_id"],
    ),
    (
        "volume",
        &[
            "id",
            "created_at",
            "updated_at",
            "uuid",
            "project_id",
            "user_id",
            "cinder_volume_id",
            "volume_provider",
            "connection_info",
            "host",
            "auto_remove",
            "contents",
        ],
    ),
    ("registry", &["id", "uuid", "domain", "username", "password"]),
];

/// Reads the columns present per table and returns the `table.column` names that are missing
/// (a whole missing table is reported as `table (table missing)`).
pub async fn missing_columns(db: &Db) -> Result<Vec<String>, StoreError> {
    let mut missing = Vec::new();
    let present: Vec<(String, String)> = match db {
        Db::My(_) => db
            .fetch(
                "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE()",
                &[],
                &[Kind::Text, Kind::Text],
            )
            .await
            .map_err(|e| StoreError::db("information_schema.COLUMNS", e))?
            .into_iter()
            .filter_map(|r| {
                let mut it = r.into_iter();
                Some((it.next()?.into_string()?.to_ascii_lowercase(), it.next()?.into_string()?.to_ascii_lowercase()))
            })
            .collect(),
        Db::Lite(_) => {
            let mut v = Vec::new();
            for (table, _) in REQUIRED {
                let rows = db
                    .fetch("SELECT name FROM pragma_table_info(?)", &[Val::Text(table.to_string())], &[Kind::Text])
                    .await
                    .map_err(|e| StoreError::db(table, e))?;
                for r in rows {
                    if let Some(c) = r.into_iter().next().and_then(Val::into_string) {
                        v.push((table.to_string(), c.to_ascii_lowercase()));
                    }
                }
            }
            v
        }
    };
    for (table, cols) in REQUIRED {
        if !present.iter().any(|(t, _)| t == table) {
            missing.push(format!("{table} (table missing)"));
            continue;
        }
        for col in *cols {
            if !present.iter().any(|(t, c)| t == table && c == col) {
                missing.push(format!("{table}.{col}"));
            }
        }
    }
    Ok(missing)
}

/// The `alembic_version` row on MySQL (`None` when the table is missing or empty).
pub async fn alembic_version(db: &Db) -> Option<String> {
    db.fetch("SELECT CAST(version_num AS CHAR) FROM alembic_version", &[], &[Kind::Text])
        .await
        .ok()?
        .into_iter()
        .next()?
        .into_iter()
        .next()?
        .into_string()
}
