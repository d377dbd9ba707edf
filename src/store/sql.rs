//! The two SQL backends behind one small dynamic interface.
//!
//! Every statement the store runs is plain SQL that both MariaDB/MySQL and SQLite accept
//! (`?` placeholders, backtick-quoted identifiers). Parameters are [`Val`]s; result columns are
//! decoded by the [`Kind`] the caller expects, so one code path serves both backends.
//! SQLite write transactions start with `BEGIN IMMEDIATE` (the writer lock is taken up
//! front, so concurrent read-modify-write transactions queue on the busy timeout instead of
//! failing with a snapshot conflict); MySQL transactions use `SELECT ... FOR UPDATE`.
use chrono::NaiveDateTime;
use sqlx::mysql::{MySql, MySqlPool, MySqlRow};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{Executor, Row, Transaction};

/// A bound parameter or a decoded column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Time(NaiveDateTime),
}

impl Val {
    pub fn opt_text(s: Option<impl Into<String>>) -> Val {
        s.map(|s| Val::Text(s.into())).unwrap_or(Val::Null)
    }
    pub fn opt_time(t: Option<NaiveDateTime>) -> Val {
        t.map(Val::Time).unwrap_or(Val::Null)
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Float(f) => Some(*f as i64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Float(f) => Some(*f),
            Val::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn into_string(self) -> Option<String> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_time(&self) -> Option<NaiveDateTime> {
        match self {
            Val::Time(t) => Some(*t),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        self.as_i64().map(|i| i != 0)
    }
}

/// How to decode a result column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// INT / TINYINT (booleans too).
    Int,
    /// MySQL FLOAT (single precision; decoded to the shortest decimal that round-trips,
    /// as PyMySQL sees it) or SQLite REAL.
    Float,
    Text,
    Time,
}

/// Result of a write statement.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub rows_affected: u64,
    pub last_insert_id: i64,
}

pub type Rows = Vec<Vec<Val>>;

/// A connection pool of either backend.
#[derive(Debug, Clone)]
pub enum Db {
    My(MySqlPool),
    Lite(SqlitePool),
}

/// An open transaction of either backend.
pub enum Tx {
    My(Transaction<'static, MySql>),
    Lite(Transaction<'static, Sqlite>),
}

impl Db {
    pub fn is_mysql(&self) -> bool {
        matches!(self, Db::My(_))
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::My(p) => Tx::My(p.begin().await?),
            Db::Lite(p) => Tx::Lite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub async fn fetch(&self, sql: &str, params: &[Val], kinds: &[Kind]) -> Result<Rows, sqlx::Error> {
        match self {
            Db::My(p) => my_fetch(p, sql, params, kinds).await,
            Db::Lite(p) => lite_fetch(p, sql, params, kinds).await,
        }
    }

    pub async fn exec(&self, sql: &str, params: &[Val]) -> Result<Done, sqlx::Error> {
        match self {
            Db::My(p) => my_exec(p, sql, params).await,
            Db::Lite(p) => lite_exec(p, sql, params).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Db::My(p) => p.close().await,
            Db::Lite(p) => p.close().await,
        }
    }
}

impl Tx {
    pub fn is_mysql(&self) -> bool {
        matches!(self, Tx::My(_))
    }

    /// ` FOR UPDATE` on MySQL (row lock), nothing on SQLite (the IMMEDIATE transaction
    /// already holds the database's write lock).
    pub fn for_update(&self) -> &'static str {
        if self.is_mysql() {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    pub async fn fetch(&mut self, sql: &str, params: &[Val], kinds: &[Kind]) -> Result<Rows, sqlx::Error> {
        match self {
            Tx::My(t) => my_fetch(&mut **t, sql, params, kinds).await,
            Tx::Lite(t) => lite_fetch(&mut **t, sql, params, kinds).await,
        }
    }

    pub async fn exec(&mut self, sql: &str, params: &[Val]) -> Result<Done, sqlx::Error> {
        match self {
            Tx::My(t) => my_exec(&mut **t, sql, params).await,
            Tx::Lite(t) => lite_exec(&mut **t, sql, params).await,
        }
    }

    /// Commits. A connection lost during the COMMIT leaves its outcome unknown: that is
    /// reported as [`sqlx::Error::Protocol`], which is never retried (a retry could apply
    /// the transaction twice).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let r = match self {
            Tx::My(t) => t.commit().await,
            Tx::Lite(t) => t.commit().await,
        };
        r.map_err(|e| match super::retry::cause(&e) {
            Some(super::retry::Cause::Disconnect) => {
                sqlx::Error::Protocol(format!("the connection was lost during COMMIT, whether it applied is unknown: {e}"))
            }
            _ => e,
        })
    }
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Val::Null => q.bind(Option::<String>::None),
                Val::Int(i) => q.bind(*i),
                Val::Float(f) => q.bind(*f),
                Val::Text(s) => q.bind(s.clone()),
                Val::Time(t) => q.bind(*t),
            };
        }
        q
    }};
}

async fn my_fetch<'e, E>(e: E, sql: &str, params: &[Val], kinds: &[Kind]) -> Result<Rows, sqlx::Error>
where
    E: Executor<'e, Database = MySql>,
{
    let q = bind_all!(sqlx::query::<MySql>(sql), params);
    let rows = q.fetch_all(e).await?;
    rows.iter().map(|r| decode_my(r, kinds)).collect()
}

async fn my_exec<'e, E>(e: E, sql: &str, params: &[Val]) -> Result<Done, sqlx::Error>
where
    E: Executor<'e, Database = MySql>,
{
    let q = bind_all!(sqlx::query::<MySql>(sql), params);
    let r = q.execute(e).await?;
    Ok(Done { rows_affected: r.rows_affected(), last_insert_id: r.last_insert_id() as i64 })
}

async fn lite_fetch<'e, E>(e: E, sql: &str, params: &[Val], kinds: &[Kind]) -> Result<Rows, sqlx::Error>
where
    E: Executor<'e, Database = Sqlite>,
{
    let q = bind_all!(sqlx::query::<Sqlite>(sql), params);
    let rows = q.fetch_all(e).await?;
    rows.iter().map(|r| decode_lite(r, kinds)).collect()
}

async fn lite_exec<'e, E>(e: E, sql: &str, params: &[Val]) -> Result<Done, sqlx::Error>
where
    E: Executor<'e, Database = Sqlite>,
{
    let q = bind_all!(sqlx::query::<Sqlite>(sql), params);
    let r = q.execute(e).await?;
    Ok(Done { rows_affected: r.rows_affected(), last_insert_id: r.last_insert_rowid() })
}

fn decode_my(r: &MySqlRow, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(match k {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map(Val::Int),
                Kind::Float => r.try_get::<Option<f32>, _>(i)?.map(|f| Val::Float(f32_as_python(f))),
                Kind::Text => match r.try_get::<Option<String>, _>(i) {
                    Ok(s) => s.map(Val::Text),
                    // information_schema columns can come back as binary strings.
                    Err(sqlx::Error::ColumnDecode { .. }) => {
                        r.try_get::<Option<Vec<u8>>, _>(i)?.map(|b| Val::Text(String::from_utf8_lossy(&b).into_owned()))
                    }
                    Err(e) => return Err(e),
                },
                Kind::Time => r.try_get::<Option<NaiveDateTime>, _>(i)?.map(Val::Time),
            }
            .unwrap_or(Val::Null))
        })
        .collect()
}

fn decode_lite(r: &SqliteRow, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(match k {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map(Val::Int),
                Kind::Float => r.try_get::<Option<f64>, _>(i)?.map(Val::Float),
                Kind::Text => r.try_get::<Option<String>, _>(i)?.map(Val::Text),
                Kind::Time => r.try_get::<Option<NaiveDateTime>, _>(i)?.map(Val::Time),
            }
            .unwrap_or(Val::Null))
        })
        .collect()
}

/// A MySQL FLOAT as the f64 Python gets from PyMySQL: the shortest decimal that
/// round-trips the single-precision value (0.1f32 → 0.1, not 0.10000000149011612).
pub fn f32_as_python(f: f32) -> f64 {
    f.to_string().parse::<f64>().unwrap_or(f as f64)
}

/// True for unique-key violations on either backend.
pub fn is_duplicate(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
