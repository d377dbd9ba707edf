//! When and how a store operation is tried again: oslo.db's `wrap_db_retry` with the
//! `[database] db_*` options, as a backon backoff.
//!
//! What is retried (the whole operation, its transaction rolled back first):
//! - **contention**: MySQL deadlock 1213 and lock wait timeout 1205 (oslo.db's `DBDeadlock`),
//!   SQLite busy/locked;
//! - **a lost connection**: the socket refused, reset or closed, the pool unable to open one
//!   in time, MySQL 2002/2003/2006/2013/1047/1927 (oslo.db's `DBConnectionError`) and
//!   1053 / 4031 (server shutting down, idle connection dropped). oslo.db retries these
//!   only with `use_db_reconnect`; we always do, so that an operation rides out a restarted
//!   MariaDB instead of leaving its container half-way.
//!
//! A connection lost during `COMMIT` is not retried: whether the transaction applied is
//! unknown, and running it again could apply it twice (`sql::Tx::commit` reports it as
//! [`sqlx::Error::Protocol`]).
//!
//! The pauses are oslo's: the first is `db_retry_interval`; with `db_inc_retry_interval`
//! the ceiling doubles each time and the pause is drawn uniformly below it (oslo's jitter,
//! which it applies to deadlocks; we apply it to every retry, so that many workers losing
//! the same database do not come back in step), never above `db_max_retry_interval`;
//! at most `db_max_retries` retries.
use std::time::Duration;

/// Why an error may be cured by trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Deadlock, lock wait timeout, SQLite busy.
    Contention,
    /// The connection was refused, lost or could not be had in time.
    Disconnect,
}

/// The cause of a MySQL/MariaDB server or client error number, if retrying can cure it.
pub fn mysql_cause(number: u16) -> Option<Cause> {
    match number {
        1213 | 1205 => Some(Cause::Contention),
        // 1040 too many connections, 1047 (Galera) not ready, 1053 shutdown in progress,
        // 1927 connection killed, 2002/2003 cannot connect, 2006 gone away, 2013 lost
        // during query, 4031 disconnected for inactivity.
        1040 | 1047 | 1053 | 1927 | 2002 | 2003 | 2006 | 2013 | 4031 => Some(Cause::Disconnect),
        _ => None,
    }
}

/// The cause of a SQLite (extended) result code, if retrying can cure it.
pub fn sqlite_cause(code: &str) -> Option<Cause> {
    // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_BUSY_RECOVERY 261, SQLITE_BUSY_SNAPSHOT 517.
    matches!(code, "5" | "6" | "261" | "517").then_some(Cause::Contention)
}

/// The cause of a sqlx error, if retrying can cure it.
pub fn cause(e: &sqlx::Error) -> Option<Cause> {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return mysql_cause(my.number());
            }
            db.code().as_deref().and_then(sqlite_cause)
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Some(Cause::Disconnect),
        _ => None,
    }
}

/// `[database] db_max_retries`, `db_retry_interval`, `db_inc_retry_interval`,
/// `db_max_retry_interval`, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub interval: Duration,
    pub inc: bool,
    pub max_interval: Duration,
}

impl Default for RetryPolicy {
    /// oslo.db's defaults: 20 retries, 1 s, doubling, at most 10 s.
    fn default() -> Self {
        RetryPolicy::from_options(20, 1.0, true, 10.0)
    }
}

fn secs(v: f64) -> Duration {
    // NaN and negatives become 0; more than a day is a day.
    Duration::try_from_secs_f64(if v.is_nan() { 0.0 } else { v.clamp(0.0, 86_400.0) }).unwrap_or_default()
}

impl RetryPolicy {
    /// From the option values as configured; negative counts mean none, bad numbers 0.
    pub fn from_options(max_retries: i64, interval: f64, inc: bool, max_interval: f64) -> Self {
        RetryPolicy { max_retries: max_retries.clamp(0, 10_000) as usize, interval: secs(interval), inc, max_interval: secs(max_interval) }
    }

    /// The pauses, one per retry.
    pub fn backoff(&self) -> OsloBackoff {
        OsloBackoff { policy: *self, ceiling: self.interval, done: 0 }
    }
}

/// oslo.db's pauses: `interval`, then drawn from `[0, 2^k * interval)`, capped.
#[derive(Debug, Clone)]
pub struct OsloBackoff {
    policy: RetryPolicy,
    /// oslo's `next_interval`.
    ceiling: Duration,
    done: usize,
}

impl Iterator for OsloBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let p = &self.policy;
        if self.done >= p.max_retries {
            return None;
        }
        self.done += 1;
        let pause = if self.done == 1 || !p.inc {
            self.ceiling
        } else {
            self.ceiling = self.ceiling.saturating_mul(2).min(Duration::from_secs(86_400));
            self.ceiling.mul_f64(rand::random::<f64>())
        };
        Some(pause.min(p.max_interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_numbers() {
        assert_eq!(mysql_cause(1213), Some(Cause::Contention));
        assert_eq!(mysql_cause(1205), Some(Cause::Contention));
        for n in [1040, 1047, 1053, 1927, 2002, 2003, 2006, 2013, 4031] {
            assert_eq!(mysql_cause(n), Some(Cause::Disconnect), "{n}");
        }
        // Duplicate key, data too long, bad field, syntax, access denied: never retried.
        for n in [1062, 1406, 1054, 1064, 1045, 1146, 0, u16::MAX] {
            assert_eq!(mysql_cause(n), None, "{n}");
        }
    }

    #[test]
    fn sqlite_codes() {
        for c in ["5", "6", "261", "517"] {
            assert_eq!(sqlite_cause(c), Some(Cause::Contention));
        }
        for c in ["1", "19", "2067", "", "busy"] {
            assert_eq!(sqlite_cause(c), None);
        }
    }

    #[test]
    fn sqlx_errors() {
        let io = |k| sqlx::Error::Io(std::io::Error::from(k));
        assert_eq!(cause(&io(std::io::ErrorKind::ConnectionRefused)), Some(Cause::Disconnect));
        assert_eq!(cause(&io(std::io::ErrorKind::UnexpectedEof)), Some(Cause::Disconnect));
        assert_eq!(cause(&io(std::io::ErrorKind::ConnectionReset)), Some(Cause::Disconnect));
        assert_eq!(cause(&sqlx::Error::PoolTimedOut), Some(Cause::Disconnect));
        // Shutting down, a commit of unknown outcome, a decoding problem: not retried.
        assert_eq!(cause(&sqlx::Error::PoolClosed), None);
        assert_eq!(cause(&sqlx::Error::Protocol("connection lost during COMMIT".into())), None);
        assert_eq!(cause(&sqlx::Error::RowNotFound), None);
        assert_eq!(cause(&sqlx::Error::ColumnNotFound("x".into())), None);
    }

    #[test]
    fn oslo_defaults_schedule() {
        let p = RetryPolicy::default();
        assert_eq!(p, RetryPolicy { max_retries: 20, interval: Duration::from_secs(1), inc: true, max_interval: Duration::from_secs(10) });
        let pauses: Vec<Duration> = p.backoff().collect();
        assert_eq!(pauses.len(), 20);
        assert_eq!(pauses[0], Duration::from_secs(1));
        // Then below 2, 4, 8 s and 10 s from there on.
        for (i, d) in pauses.iter().enumerate().skip(1) {
            let ceiling = Duration::from_secs(1 << i.min(20)).min(Duration::from_secs(10));
            assert!(*d <= ceiling, "pause {i}: {d:?} above {ceiling:?}");
        }
        // Jittered: the second pause (drawn below 2 s, so never capped) differs between
        // schedules. (Later draws are capped at 10 s, as oslo caps them, so most of them are
        // exactly 10 s: comparing those failed about every other run.)
        let second: Vec<Duration> = (0..20).map(|_| p.backoff().nth(1).unwrap()).collect();
        assert!(second.windows(2).any(|w| w[0] != w[1]), "{second:?}");
    }

    #[test]
    fn constant_and_bounded() {
        let p = RetryPolicy::from_options(3, 0.5, false, 10.0);
        assert_eq!(p.backoff().collect::<Vec<_>>(), vec![Duration::from_millis(500); 3]);
        let p = RetryPolicy::from_options(5, 4.0, false, 2.0);
        assert!(p.backoff().all(|d| d == Duration::from_secs(2)));
        assert_eq!(RetryPolicy::from_options(0, 1.0, true, 10.0).backoff().count(), 0);
        assert_eq!(RetryPolicy::from_options(-1, 1.0, true, 10.0).backoff().count(), 0);
        let hostile = RetryPolicy::from_options(i64::MAX, f64::NAN, true, f64::INFINITY);
        assert_eq!(hostile.max_retries, 10_000);
        assert_eq!(hostile.interval, Duration::ZERO);
        assert_eq!(hostile.max_interval, Duration::from_secs(86_400));
        assert!(hostile.backoff().take(100).all(|d| d == Duration::ZERO));
        let neg = RetryPolicy::from_options(2, -3.0, true, -1.0);
        assert!(neg.backoff().all(|d| d == Duration::ZERO));
    }
}
