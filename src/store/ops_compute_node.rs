//! `compute_node`: the host's inventory and usage, as zun's `ComputeNodeTracker` keeps it.
//!
//! The caller (the domain) gathers the values from Docker info and the host; the store
//! inserts the row once (keyed by `hostname`, like `ComputeNode.get_by_name`), updates it when
//! something changed, applies resource claims atomically (`compute_node_add_usage`) and redoes
//! zun's usage audit from the host's container rows (`compute_node_recompute_usage`).
//! Callers should serialize claims and refreshes the way zun does with its
//! `zun-compute_resources` lock: an upsert writes the usage columns the caller supplies.
use super::pyjson;
use super::sql::{Kind, Tx, Val};
use super::{now, Result, Store, StoreError};
use chrono::NaiveDateTime;
use serde_json::{Map, Value};

/// Every `compute_node` column. JSON columns are typed values; `pci_stats` is the raw text
/// zun stores (`jsonutils.dumps(PciDevicePoolList primitive)`) or None.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeNodeRecord {
    /// Primary key; generated (uuid4) on insert when empty.
    pub uuid: String,
    /// Placement resource provider uuid; `uuid` when empty.
    pub rp_uuid: String,
    pub hostname: String,
    /// `{"nodes": [{"id", "cpuset", "pinned_cpus", "mem_total", "mem_available"}]}`.
    pub numa_topology: Value,
    pub mem_total: i64,
    pub mem_free: i64,
    pub mem_available: i64,
    pub mem_used: i64,
    pub total_containers: i64,
    pub running_containers: i64,
    pub paused_containers: i64,
    pub stopped_containers: i64,
    pub cpus: i64,
    pub cpu_used: f64,
    pub architecture: Option<String>,
    pub os_type: Option<String>,
    pub os: Option<String>,
    pub kernel_version: Option<String>,
    pub labels: Map<String, Value>,
    pub pci_stats: Option<String>,
    pub disk_total: i64,
    pub disk_used: i64,
    pub disk_quota_supported: bool,
    pub runtimes: Vec<String>,
    pub enable_cpu_pinning: bool,
    /// Set by the store (ignored on write).
    pub created_at: Option<NaiveDateTime>,
    /// Set by the store (ignored on write).
    pub updated_at: Option<NaiveDateTime>,
}

impl Default for ComputeNodeRecord {
    fn default() -> Self {
        ComputeNodeRecord {
            uuid: String::new(),
            rp_uuid: String::new(),
            hostname: String::new(),
            numa_topology: serde_json::json!({"nodes": []}),
            mem_total: 0,
            mem_free: 0,
            mem_available: 0,
            mem_used: 0,
            total_containers: 0,
            running_containers: 0,
            paused_containers: 0,
            stopped_containers: 0,
            cpus: 0,
            cpu_used: 0.0,
            architecture: None,
            os_type: None,
            os: None,
            kernel_version: None,
            labels: Map::new(),
            pci_stats: None,
            disk_total: 0,
            disk_used: 0,
            disk_quota_supported: false,
            runtimes: Vec::new(),
            enable_cpu_pinning: false,
            created_at: None,
            updated_at: None,
        }
    }
}

/// Writable columns (everything but the key and the timestamps), in table order.
const WRITE_COLS: &[&str] = &[
    "hostname",
    "numa_topology",
    "mem_total",
    "mem_free",
    "mem_available",
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
    "mem_used",
    "pci_stats",
    "disk_total",
    "disk_used",
    "disk_quota_supported",
    "runtimes",
    "enable_cpu_pinning",
    "rp_uuid",
];

fn kind_of(col: &str) -> Kind {
    match col {
        "cpu_used" => Kind::Float,
        "hostname" | "numa_topology" | "architecture" | "os_type" | "os" | "kernel_version" | "labels" | "pci_stats" | "runtimes"
        | "rp_uuid" => Kind::Text,
        _ => Kind::Int,
    }
}

/// (max characters) of the VARCHAR columns, for validation.
fn max_chars(col: &str) -> Option<usize> {
    match col {
        "hostname" => Some(255),
        "architecture" | "os_type" => Some(32),
        "os" => Some(64),
        "kernel_version" => Some(128),
        "rp_uuid" | "uuid" => Some(36),
        _ => None,
    }
}

fn read_cols() -> (String, Vec<Kind>) {
    let mut cols = vec!["`uuid`".to_string()];
    let mut kinds = vec![Kind::Text];
    for c in WRITE_COLS {
        cols.push(format!("`{c}`"));
        kinds.push(kind_of(c));
    }
    cols.push("`created_at`".into());
    kinds.push(Kind::Time);
    cols.push("`updated_at`".into());
    kinds.push(Kind::Time);
    (cols.join(", "), kinds)
}

impl ComputeNodeRecord {
    /// Column values for WRITE_COLS, validated.
    fn to_vals(&self) -> Result<Vec<Val>> {
        let text = |col: &str, s: &Option<String>| -> Result<Val> {
            match s {
                None => Ok(Val::Null),
                Some(s) => {
                    let s = super::container::bmp_only(s);
                    if let Some(max) = max_chars(col) {
                        if s.chars().count() > max {
                            return Err(StoreError::InvalidField {
                                uuid: self.hostname.clone(),
                                field: format!("compute_node.{col}"),
                                reason: format!("{} characters, the column holds at most {max}", s.chars().count()),
                            });
                        }
                    }
                    Ok(Val::Text(s))
                }
            }
        };
        let int = |col: &str, i: i64| -> Result<Val> {
            if i32::try_from(i).is_err() {
                return Err(StoreError::InvalidField {
                    uuid: self.hostname.clone(),
                    field: format!("compute_node.{col}"),
                    reason: format!("{i} is outside the INT range"),
                });
            }
            Ok(Val::Int(i))
        };
        let numa = if self.numa_topology.is_null() { Value::Object(Map::new()) } else { self.numa_topology.clone() };
        if !numa.is_object() {
            return Err(StoreError::InvalidField {
                uuid: self.hostname.clone(),
                field: "compute_node.numa_topology".into(),
                reason: "expected a dict".into(),
            });
        }
        let runtimes = Value::Array(self.runtimes.iter().cloned().map(Value::String).collect());
        let rp = if self.rp_uuid.is_empty() { self.uuid.clone() } else { self.rp_uuid.clone() };
        Ok(vec![
            text("hostname", &Some(self.hostname.clone()))?,
            Val::Text(pyjson::dumps(&numa)),
            int("mem_total", self.mem_total)?,
            int("mem_free", self.mem_free)?,
            int("mem_available", self.mem_available)?,
            int("total_containers", self.total_containers)?,
            int("running_containers", self.running_containers)?,
            int("paused_containers", self.paused_containers)?,
            int("stopped_containers", self.stopped_containers)?,
            int("cpus", self.cpus)?,
            Val::Float(self.cpu_used),
            text("architecture", &self.architecture)?,
            text("os_type", &self.os_type)?,
            text("os", &self.os)?,
            text("kernel_version", &self.kernel_version)?,
            Val::Text(pyjson::dumps(&Value::Object(self.labels.clone()))),
            int("mem_used", self.mem_used)?,
            text("pci_stats", &self.pci_stats)?,
            int("disk_total", self.disk_total)?,
            int("disk_used", self.disk_used)?,
            Val::Int(self.disk_quota_supported as i64),
            Val::Text(pyjson::dumps(&runtimes)),
            Val::Int(self.enable_cpu_pinning as i64),
            text("rp_uuid", &Some(rp))?,
        ])
    }

    fn from_row(r: Vec<Val>) -> Result<Self> {
        let mut it = r.into_iter();
        let mut next = || it.next().unwrap_or(Val::Null);
        let uuid = next().into_string().unwrap_or_default();
        let json = |v: Val, col: &str, key: &str| -> Result<Value> {
            match v.into_string() {
                None => Ok(Value::Null),
                Some(s) => serde_json::from_str(&s).map_err(|e| StoreError::CorruptRow {
                    table: "compute_node",
                    column: col.into(),
                    key: key.into(),
                    reason: e.to_string(),
                }),
            }
        };
        let hostname = next().into_string().unwrap_or_default();
        let numa_topology = json(next(), "numa_topology", &uuid)?;
        let mem_total = next().as_i64().unwrap_or(0);
        let mem_free = next().as_i64().unwrap_or(0);
        let mem_available = next().as_i64().unwrap_or(0);
        let total_containers = next().as_i64().unwrap_or(0);
        let running_containers = next().as_i64().unwrap_or(0);
        let paused_containers = next().as_i64().unwrap_or(0);
        let stopped_containers = next().as_i64().unwrap_or(0);
        let cpus = next().as_i64().unwrap_or(0);
        let cpu_used = next().as_f64().unwrap_or(0.0);
        let architecture = next().into_string();
        let os_type = next().into_string();
        let os = next().into_string();
        let kernel_version = next().into_string();
        let labels = match json(next(), "labels", &uuid)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mem_used = next().as_i64().unwrap_or(0);
        let pci_stats = next().into_string();
        let disk_total = next().as_i64().unwrap_or(0);
        let disk_used = next().as_i64().unwrap_or(0);
        let disk_quota_supported = next().as_bool().unwrap_or(false);
        let runtimes = match json(next(), "runtimes", &uuid)? {
            Value::Array(a) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let enable_cpu_pinning = next().as_bool().unwrap_or(false);
        let rp_uuid = next().into_string().unwrap_or_default();
        let created_at = next().as_time();
        let updated_at = next().as_time();
        Ok(ComputeNodeRecord {
            uuid,
            rp_uuid,
            hostname,
            numa_topology,
            mem_total,
            mem_free,
            mem_available,
            mem_used,
            total_containers,
            running_containers,
            paused_containers,
            stopped_containers,
            cpus,
            cpu_used,
            architecture,
            os_type,
            os,
            kernel_version,
            labels,
            pci_stats,
            disk_total,
            disk_used,
            disk_quota_supported,
            runtimes,
            enable_cpu_pinning,
            created_at,
            updated_at,
        })
    }
}

/// The row of `hostname` (the oldest when several exist), optionally locked.
/// The end of every write: read the row back as stored, commit, return it.
async fn reselect_and_commit(mut tx: Tx, hostname: &str) -> Result<ComputeNodeRecord> {
    let stored = select_tx(&mut tx, hostname, false)
        .await?
        .map(|(r, _)| r)
        .ok_or_else(|| StoreError::ComputeNodeNotFound { hostname: hostname.into() })?;
    tx.commit().await.map_err(|e| StoreError::db("compute_node", e))?;
    Ok(stored)
}

async fn select_tx(tx: &mut Tx, hostname: &str, lock: bool) -> Result<Option<(ComputeNodeRecord, Vec<Val>)>> {
    let (cols, kinds) = read_cols();
    let sql = format!(
        "SELECT {cols} FROM `compute_node` WHERE `hostname` = ? ORDER BY `created_at`, `uuid` LIMIT 1{}",
        if lock { tx.for_update() } else { "" }
    );
    let rows = tx.fetch(&sql, &[Val::Text(hostname.into())], &kinds).await.map_err(|e| StoreError::db("compute_node", e))?;
    match rows.into_iter().next() {
        None => Ok(None),
        Some(r) => {
            // The raw write-column values, to detect changes exactly as stored.
            let raw = r[1..=WRITE_COLS.len()].to_vec();
            Ok(Some((ComputeNodeRecord::from_row(r)?, raw)))
        }
    }
}

fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        // FLOAT columns keep single precision on MySQL.
        (Val::Float(x), Val::Float(y)) => (*x as f32) == (*y as f32),
        _ => a == b,
    }
}

impl Store {
    /// The `compute_node` row whose hostname is `hostname` (`ComputeNode.get_by_name`).
    pub async fn compute_node_get(&self, hostname: &str) -> Result<Option<ComputeNodeRecord>> {
        let (cols, kinds) = read_cols();
        let rows = self
            .db
            .fetch(
                &format!("SELECT {cols} FROM `compute_node` WHERE `hostname` = ? ORDER BY `created_at`, `uuid` LIMIT 1"),
                &[Val::Text(hostname.into())],
                &kinds,
            )
            .await
            .map_err(|e| StoreError::db("compute_node", e))?;
        rows.into_iter().next().map(ComputeNodeRecord::from_row).transpose()
    }

    /// Inserts the row for `rec.hostname` once (uuid generated when empty, `rp_uuid` = uuid
    /// when empty, `created_at = now`), otherwise UPDATEs the columns whose stored value
    /// differs (plus `updated_at`); the existing row keeps its uuid. Returns the stored row.
    pub async fn compute_node_upsert(&self, rec: &ComputeNodeRecord) -> Result<ComputeNodeRecord> {
        let mut rec = rec.clone();
        if rec.uuid.is_empty() {
            rec.uuid = uuid::Uuid::new_v4().to_string();
        }
        let rec = &rec;
        self.retrying(|| async move {
            let err = |e| StoreError::db("compute_node", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            let ts = now();
            match select_tx(&mut tx, &rec.hostname, true).await? {
                None => {
                    let vals = rec.to_vals()?;
                    let mut cols = vec!["`created_at`".to_string(), "`uuid`".to_string()];
                    cols.extend(WRITE_COLS.iter().map(|c| format!("`{c}`")));
                    let mut params = vec![Val::Time(ts), Val::Text(rec.uuid.clone())];
                    params.extend(vals);
                    let marks = vec!["?"; cols.len()].join(", ");
                    tx.exec(&format!("INSERT INTO `compute_node` ({}) VALUES ({marks})", cols.join(", ")), &params).await.map_err(|e| {
                        if super::sql::is_duplicate(&e) {
                            StoreError::Duplicate { table: "compute_node".into(), detail: format!("uuid or rp_uuid of {}", rec.uuid) }
                        } else {
                            err(e)
                        }
                    })?;
                    tracing::info!(hostname = %rec.hostname, uuid = %rec.uuid, "compute_node created");
                }
                Some((existing, raw)) => {
                    let mut mine = rec.clone();
                    mine.uuid = existing.uuid.clone();
                    let vals = mine.to_vals()?;
                    let mut sets = Vec::new();
                    let mut params = Vec::new();
                    for ((col, new), old) in WRITE_COLS.iter().zip(vals).zip(raw.iter()) {
                        if !same(&new, old) {
                            sets.push(format!("`{col}` = ?"));
                            params.push(new);
                        }
                    }
                    if !sets.is_empty() {
                        params.push(Val::Time(ts));
                        params.push(Val::Text(existing.uuid.clone()));
                        tx.exec(&format!("UPDATE `compute_node` SET {}, `updated_at` = ? WHERE `uuid` = ?", sets.join(", ")), &params)
                            .await
                            .map_err(err)?;
                    }
                }
            }
            reselect_and_commit(tx, &rec.hostname).await
        })
        .await
    }

    /// Applies a resource claim (positive deltas) or its release (negative deltas)
    /// atomically in one UPDATE, like zun's `_update_usage`: `cpu_used += cpu`,
    /// `mem_used += mem_mb`, `disk_used += disk_gb`, `running_containers += containers`,
    /// `mem_free = mem_total - mem_used`; no counter goes below 0. The row is not read
    /// back: no caller needs it, and a claim is on every create's path
    /// ([`Store::compute_node_get`] reads it). The transaction stays: an UPDATE cut by a
    /// lost connection before its COMMIT is rolled back and retried whole, where an
    /// autocommit increment would be ambiguous for its whole run.
    pub async fn compute_node_add_usage(&self, hostname: &str, cpu: f64, mem_mb: i64, disk_gb: i64, containers: i64) -> Result<()> {
        self.retrying(|| async move {
            let err = |e| StoreError::db("compute_node", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            // SQLite evaluates every SET expression on the old row (MySQL left to right), so
            // mem_free repeats the new mem_used expression instead of referring to it.
            let done = tx
                .exec(
                    "UPDATE `compute_node` SET \
                     `cpu_used` = CASE WHEN `cpu_used` + ? < 0 THEN 0 ELSE `cpu_used` + ? END, \
                     `mem_free` = CASE WHEN `mem_total` - (CASE WHEN `mem_used` + ? < 0 THEN 0 ELSE `mem_used` + ? END) < 0 \
                                  THEN 0 ELSE `mem_total` - (CASE WHEN `mem_used` + ? < 0 THEN 0 ELSE `mem_used` + ? END) END, \
                     `mem_used` = CASE WHEN `mem_used` + ? < 0 THEN 0 ELSE `mem_used` + ? END, \
                     `disk_used` = CASE WHEN `disk_used` + ? < 0 THEN 0 ELSE `disk_used` + ? END, \
                     `running_containers` = CASE WHEN `running_containers` + ? < 0 THEN 0 ELSE `running_containers` + ? END, \
                     `updated_at` = ? WHERE `hostname` = ?",
                    &[
                        Val::Float(cpu),
                        Val::Float(cpu),
                        Val::Int(mem_mb),
                        Val::Int(mem_mb),
                        Val::Int(mem_mb),
                        Val::Int(mem_mb),
                        Val::Int(mem_mb),
                        Val::Int(mem_mb),
                        Val::Int(disk_gb),
                        Val::Int(disk_gb),
                        Val::Int(containers),
                        Val::Int(containers),
                        Val::Time(now()),
                        Val::Text(hostname.into()),
                    ],
                )
                .await
                .map_err(err)?;
            if done.rows_affected == 0 {
                return Err(StoreError::ComputeNodeNotFound { hostname: hostname.into() });
            }
            tx.commit().await.map_err(err)
        })
        .await
    }

    /// zun's usage audit (`_update_usage_from_containers`): from every container row (all
    /// types) on `hostname`: `cpu_used = Σ cpu`, `mem_used = Σ int(memory)`,
    /// `mem_free = max(0, mem_total - mem_used)`, `disk_used = Σ disk`,
    /// `running_containers` = their count. Writes (with `updated_at`) only when something
    /// changed. Returns the row.
    pub async fn compute_node_recompute_usage(&self, hostname: &str) -> Result<ComputeNodeRecord> {
        self.retrying(|| async move {
            let err = |e| StoreError::db("compute_node", e);
            let mut tx = self.db.begin().await.map_err(err)?;
            let (node, _) =
                select_tx(&mut tx, hostname, true).await?.ok_or_else(|| StoreError::ComputeNodeNotFound { hostname: hostname.into() })?;
            let rows = tx
                .fetch(
                    "SELECT `uuid`, `cpu`, `memory`, `disk` FROM `container` WHERE `host` = ?",
                    &[Val::Text(hostname.into())],
                    &[Kind::Text, Kind::Float, Kind::Text, Kind::Int],
                )
                .await
                .map_err(|e| StoreError::db("container", e))?;
            let (mut cpu, mut mem, mut disk, mut count) = (0f64, 0i64, 0i64, 0i64);
            for r in &rows {
                cpu += r[1].as_f64().filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0);
                if let Some(m) = r[2].as_str().filter(|m| !m.is_empty()) {
                    match m.trim().parse::<i64>() {
                        // mem_used is an INT column: a row out of its range is not counted
                        // (the worker refuses such creates; an older row must not stop
                        // every audit after it), and the sum saturates.
                        Ok(v) if (0..=i64::from(i32::MAX)).contains(&v) => mem = mem.saturating_add(v).min(i64::from(i32::MAX)),
                        Ok(_) => {
                            tracing::warn!(uuid = r[0].as_str().unwrap_or("?"), memory = m, "container memory is out of range; not counted")
                        }
                        Err(_) => tracing::warn!(
                            uuid = r[0].as_str().unwrap_or("?"),
                            memory = m,
                            "container memory is not an integer; not counted"
                        ),
                    }
                }
                disk = disk.saturating_add(r[3].as_i64().unwrap_or(0).clamp(0, i64::from(i32::MAX))).min(i64::from(i32::MAX));
                count += 1;
            }
            let free = (node.mem_total - mem).max(0);
            let changed = (node.cpu_used as f32) != (cpu as f32)
                || node.mem_used != mem
                || node.mem_free != free
                || node.disk_used != disk
                || node.running_containers != count;
            if changed {
                tx.exec(
                    "UPDATE `compute_node` SET `cpu_used` = ?, `mem_used` = ?, `mem_free` = ?, `disk_used` = ?, \
                     `running_containers` = ?, `updated_at` = ? WHERE `uuid` = ?",
                    &[
                        Val::Float(cpu),
                        Val::Int(mem),
                        Val::Int(free),
                        Val::Int(disk),
                        Val::Int(count),
                        Val::Time(now()),
                        Val::Text(node.uuid.clone()),
                    ],
                )
                .await
                .map_err(err)?;
            }
            reselect_and_commit(tx, hostname).await
        })
        .await
    }
}
