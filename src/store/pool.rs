//! `[database]` pool options, named and defaulted as oslo.db names them, mapped onto the
//! sqlx MySQL pool:
//!
//! | oslo.db (SQLAlchemy `QueuePool`) | default | sqlx |
//! | --- | --- | --- |
//! | `max_pool_size` (`pool_size`) | 5 | with `max_overflow`: `max_connections` |
//! | `max_overflow` | 50 | `max_connections = max_pool_size + max_overflow` (the hard cap; SQLAlchemy's too) |
//! | `pool_timeout` | unset: 30 s | `acquire_timeout` |
//! | `connection_recycle_time` (`pool_recycle`) | 3600 s | `max_lifetime`, and `idle_timeout` at most 600 s |
//!
//! Differences, because sqlx's pool has one kind of connection: SQLAlchemy closes an
//! overflow connection as soon as it is returned and keeps up to `pool_size` idle ones;
//! sqlx closes any connection idle longer than `idle_timeout` (here the smaller of
//! `connection_recycle_time` and 10 min) and opens none in advance (`min_connections` 0).
//! SQLAlchemy's `max_overflow = -1` (no limit) is taken as the total cap below.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most connections one worker's pool may open, whatever the options say.
pub const MAX_CONNECTIONS: u32 = 1000;
/// The longest a connection stays idle in the pool.
const MAX_IDLE: Duration = Duration::from_secs(600);

/// The pool as configured, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    /// Connections open at most (`max_pool_size + max_overflow`), 1..=1000.
    pub max_connections: u32,
    /// How long an operation waits for a free connection (`pool_timeout`).
    pub acquire_timeout: Duration,
    /// A connection older than this is closed and replaced (`connection_recycle_time`);
    /// `None` when that option is 0 or negative.
    pub max_lifetime: Option<Duration>,
    /// An idle connection older than this is closed.
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    /// oslo.db's defaults: 5 pooled + 50 overflow, 30 s wait, recycled after an hour.
    fn default() -> Self {
        PoolSettings::from_options(5, 50, None, 3600.0)
    }
}

fn secs(v: f64) -> Option<Duration> {
    // NaN, zero and negatives: none; more than a day: a day.
    (v.is_finite() && v > 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}

impl PoolSettings {
    /// From the option values as configured. A pool size below 1 counts as 1; a negative
    /// overflow (SQLAlchemy's "no limit") as the cap; `pool_timeout` unset, 0, negative
    /// or NaN as 30 s.
    pub fn from_options(max_pool_size: i64, max_overflow: i64, pool_timeout: Option<f64>, connection_recycle_time: f64) -> Self {
        let cap = i64::from(MAX_CONNECTIONS);
        let size = max_pool_size.clamp(1, cap);
        let total = if max_overflow < 0 { cap } else { size.saturating_add(max_overflow).min(cap) };
        let max_lifetime = secs(connection_recycle_time);
        PoolSettings {
            max_connections: u32::try_from(total).unwrap_or(MAX_CONNECTIONS),
            acquire_timeout: pool_timeout.and_then(secs).unwrap_or(Duration::from_secs(30)),
            max_lifetime,
            idle_timeout: max_lifetime.map_or(MAX_IDLE, |l| l.min(MAX_IDLE)),
        }
    }
}

/// A connection idle at least this long is pinged before it is handed out (HikariCP's
/// "aliveness bypass window"): one used moments ago is not, which spares a `COM_PING`
/// round trip on most acquires of a busy worker.
pub const PING_WHEN_IDLE: Duration = Duration::from_secs(1);
/// After a connection was seen lost, every connection is pinged before use for this long:
/// a MariaDB restart (or a `KILL` of every connection) kills the recently used ones too,
/// and those must not be handed to operations one after the other.
pub const PING_ALL_AFTER_LOSS: Duration = Duration::from_secs(10);

/// When the pool pings a connection before handing it out (sqlx `before_acquire`):
/// when it has been idle [`PING_WHEN_IDLE`] or more, or within [`PING_ALL_AFTER_LOSS`]
/// of a lost connection reported by [`Liveness::connection_lost`]. Cheap to clone; the
/// clones share the state.
#[derive(Debug, Clone)]
pub struct Liveness {
    epoch: Instant,
    /// Milliseconds since `epoch` until which every acquire pings (0: none).
    ping_all_until_ms: Arc<AtomicU64>,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness { epoch: Instant::now(), ping_all_until_ms: Arc::new(AtomicU64::new(0)) }
    }
}

impl Liveness {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A connection was found lost: ping every connection before use for a while.
    pub fn connection_lost(&self) {
        let until = self.now_ms().saturating_add(PING_ALL_AFTER_LOSS.as_millis() as u64);
        self.ping_all_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    /// Should a connection idle for `idle_for` be pinged before it is handed out?
    pub fn should_ping(&self, idle_for: Duration) -> bool {
        idle_for >= PING_WHEN_IDLE || self.now_ms() < self.ping_all_until_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_only_idle_connections_unless_one_was_lost() {
        let l = Liveness::default();
        assert!(!l.should_ping(Duration::ZERO));
        assert!(!l.should_ping(Duration::from_millis(999)));
        assert!(l.should_ping(PING_WHEN_IDLE));
        assert!(l.should_ping(Duration::from_secs(3600)));
        l.clone().connection_lost();
        assert!(l.should_ping(Duration::ZERO), "a clone shares the state");
    }

    #[test]
    fn oslo_defaults() {
        let p = PoolSettings::default();
        assert_eq!(p.max_connections, 55);
        assert_eq!(p.acquire_timeout, Duration::from_secs(30));
        assert_eq!(p.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(p.idle_timeout, Duration::from_secs(600));
    }

    #[test]
    fn size_plus_overflow_is_the_cap() {
        assert_eq!(PoolSettings::from_options(2, 0, None, 3600.0).max_connections, 2);
        assert_eq!(PoolSettings::from_options(2, 3, None, 3600.0).max_connections, 5);
        assert_eq!(PoolSettings::from_options(0, 0, None, 3600.0).max_connections, 1);
        assert_eq!(PoolSettings::from_options(-7, 0, None, 3600.0).max_connections, 1);
        assert_eq!(PoolSettings::from_options(5, -1, None, 3600.0).max_connections, MAX_CONNECTIONS);
        assert_eq!(PoolSettings::from_options(i64::MAX, i64::MAX, None, 3600.0).max_connections, MAX_CONNECTIONS);
        assert_eq!(PoolSettings::from_options(900, 900, None, 3600.0).max_connections, MAX_CONNECTIONS);
    }

    #[test]
    fn timeouts() {
        let p = PoolSettings::from_options(5, 0, Some(2.5), 60.0);
        assert_eq!(p.acquire_timeout, Duration::from_millis(2500));
        assert_eq!(p.max_lifetime, Some(Duration::from_secs(60)));
        assert_eq!(p.idle_timeout, Duration::from_secs(60), "idle never longer than the recycle time");
        for bad in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(PoolSettings::from_options(5, 0, Some(bad), 3600.0).acquire_timeout, Duration::from_secs(30), "{bad}");
        }
        let never = PoolSettings::from_options(5, 0, None, -1.0);
        assert_eq!(never.max_lifetime, None, "-1: never recycled");
        assert_eq!(never.idle_timeout, Duration::from_secs(600));
        assert_eq!(PoolSettings::from_options(5, 0, Some(1e12), 1e12).acquire_timeout, Duration::from_secs(86_400));
    }
}
