//! The only module that touches lapin: broker connections with failover across the hosts
//! of `transport_url`, oslo's topology, consumers, publisher confirms and replies.
pub mod client;
pub mod publisher;
pub mod server;
pub mod url;

pub use publisher::{oslo_properties, Publisher, Settled};
pub use server::RpcServer;
pub use url::{parse_transport_url, BrokerAddr, UrlError};

use crate::config::Settings;
use crate::oslo::topology::{ArgValue, RabbitOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("transport_url: {0}")]
    Url(#[from] UrlError),
    #[error("no transport_url configured ([DEFAULT] transport_url)")]
    NoTransport,
    #[error("cannot connect to any broker ({tried}): {last}")]
    Connect { tried: String, last: String },
    #[error("AMQP: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("consumer on {0} was cancelled by the broker")]
    ConsumerCancelled(String),
    #[error("TLS to the broker, as [oslo_messaging_rabbit] asks, cannot be set up: {0}")]
    Tls(String),
    #[error("an exchange or routing key of {0} bytes is longer than AMQP's 255")]
    NameTooLong(usize),
    #[error("reply to {reply_q} abandoned: {reason}")]
    ReplyAbandoned { reply_q: String, reason: String },
}

/// Everything the AMQP layer needs, derived from the configuration.
#[derive(Debug)]
pub struct AmqpSettings {
    pub brokers: Vec<BrokerAddr>,
    pub exchange: String,
    pub topic: String,
    pub server: String,
    pub rabbit: RabbitOptions,
    /// Unacknowledged deliveries per listening channel.
    pub prefetch: u16,
    pub heartbeat: u16,
    /// How long a reply is retried while its queue is missing.
    pub reply_retry: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub notification_exchange_durable: bool,
    /// CA and client identity for `amqps` brokers (`ssl_ca_file`, `ssl_cert_file`, ...).
    pub tls: BrokerTls,
    /// Acknowledge a delivery whose operation still runs after this long (three
    /// quarters of the broker's `consumer_timeout`), before the broker closes the channel.
    pub early_ack_after: Option<Duration>,
    next_broker: AtomicUsize,
}

/// lapin's TLS configuration, read from the files once at start. Its `Debug` shows which
/// files are in use, never the key.
#[derive(Clone, Default)]
pub struct BrokerTls {
    config: lapin::tcp::OwnedTLSConfig,
    shown: String,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerTls({})", self.shown)
    }
}

impl BrokerTls {
    /// Reads `ssl_ca_file` (PEM certificates) and `ssl_cert_file` + `ssl_key_file` (PEM).
    /// Any of them named but unreadable, not PEM, or a key without its certificate is an
    /// error: the worker refuses to start rather than connect without what was asked.
    pub fn from_config(r: &crate::config::RabbitSection) -> Result<Self, AmqpError> {
        let read = |opt: &str, path: &str| {
            std::fs::read_to_string(path).map_err(|e| AmqpError::Tls(format!("[oslo_messaging_rabbit] {opt} {path:?}: {e}")))
        };
        let mut t = BrokerTls::default();
        let mut shown = Vec::new();
        if let Some(path) = r.ssl_ca_file.as_deref().filter(|p| !p.is_empty()) {
            let pem = read("ssl_ca_file", path)?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(AmqpError::Tls(format!("[oslo_messaging_rabbit] ssl_ca_file {path:?} holds no PEM certificate")));
            }
            t.config.cert_chain = Some(pem);
            shown.push(format!("ca={path}"));
        }
        match (r.ssl_cert_file.as_deref().filter(|p| !p.is_empty()), r.ssl_key_file.as_deref().filter(|p| !p.is_empty())) {
            (Some(cert), Some(key)) => {
                let pem = read("ssl_cert_file", cert)?;
                let key_pem = read("ssl_key_file", key)?;
                t.config.identity = Some(lapin::tcp::OwnedIdentity::PKCS8 { pem: pem.into_bytes(), key: key_pem.into_bytes() });
                shown.push(format!("cert={cert}"));
            }
            (None, None) => {}
            _ => return Err(AmqpError::Tls("[oslo_messaging_rabbit] ssl_cert_file and ssl_key_file go together".into())),
        }
        t.shown = if shown.is_empty() { "system roots".into() } else { shown.join(", ") };
        Ok(t)
    }
}

impl AmqpSettings {
    pub fn from_config(s: &Settings) -> Result<Self, AmqpError> {
        let url = s.default.transport_url.as_ref().map(crate::config::Secret::expose).ok_or(AmqpError::NoTransport)?;
        let r = &s.oslo_messaging_rabbit;
        let brokers = parse_transport_url(url, r.ssl)?;
        let n_brokers = brokers.len().max(1);
        let rabbit = RabbitOptions {
            amqp_durable_queues: r.amqp_durable_queues,
            amqp_auto_delete: r.amqp_auto_delete,
            rabbit_ha_queues: r.rabbit_ha_queues,
            rabbit_quorum_queue: r.rabbit_quorum_queue,
            rabbit_transient_quorum_queue: r.rabbit_transient_quorum_queue,
            rabbit_quorum_delivery_limit: clamp_i32(r.rabbit_quorum_delivery_limit),
            rabbit_quorum_max_memory_length: clamp_i32(r.rabbit_quorum_max_memory_length),
            rabbit_quorum_max_memory_bytes: clamp_i32(r.rabbit_quorum_max_memory_bytes),
            rabbit_transient_queues_ttl: clamp_i32(r.rabbit_transient_queues_ttl),
            rabbit_qos_prefetch_count: r.rabbit_qos_prefetch_count,
            enable_cancel_on_failover: r.enable_cancel_on_failover,
            rabbit_stream_fanout: false,
        };
        let prefetch = if r.rabbit_qos_prefetch_count > 0 { r.rabbit_qos_prefetch_count } else { s.compute.prefetch };
        // oslo reads the TLS files only when TLS is on; so do we, and then they must work.
        let tls = if brokers.iter().any(|b| b.tls) { BrokerTls::from_config(r)? } else { BrokerTls::default() };
        Ok(AmqpSettings {
            brokers,
            exchange: s.default.control_exchange.clone(),
            topic: s.compute.topic.clone(),
            server: s.default.host.clone(),
            notification_exchange_durable: r.amqp_durable_queues || r.rabbit_quorum_queue,
            rabbit,
            prefetch,
            heartbeat: r.heartbeat_timeout_threshold,
            reply_retry: Duration::from_secs(r.kombu_missing_consumer_retry_timeout),
            retry_min: seconds(r.rabbit_retry_interval, 0.05),
            retry_max: seconds(r.rabbit_interval_max, 0.1),
            tls,
            early_ack_after: (s.compute.consumer_timeout > 0)
                .then(|| Duration::from_millis(s.compute.consumer_timeout.min(86_400 * 365).saturating_mul(750))),
            next_broker: AtomicUsize::new(rand::random_range(0..n_brokers)),
        })
    }

    /// Backoff between connection rounds: exponential with jitter, unbounded count.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.retry_min)
            .with_max_delay(self.retry_max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The pause before the next attempt after a session that connected but failed
    /// (a queue leader being elected, a channel closed): short and jittered, growing
    /// from 50 ms to `retry_min`; `attempt` 0 retries at once.
    pub fn quick_retry(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let base = Duration::from_millis(50u64.saturating_mul(1 << attempt.min(8))).min(self.retry_min.max(Duration::from_millis(50)));
        base.mul_f64(0.5 + rand::random::<f64>() / 2.0)
    }
}

/// A configured interval in seconds, at least `min`, at most a day (no panic on inf).
fn seconds(v: f64, min: f64) -> Duration {
    Duration::try_from_secs_f64(v.clamp(min, 86_400.0)).unwrap_or(Duration::from_secs_f64(min))
}

/// oslo sends these as signed 32-bit AMQP integers.
fn clamp_i32(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// The order in which to try the brokers: round the ring from `start`, with `avoid`
/// (the broker whose connection was just lost) last, so that a failover never lands on
/// the node that just failed while another one answers.
pub(crate) fn broker_order(n: usize, start: usize, avoid: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n.max(1)).filter(|i| Some(*i) != avoid).collect();
    if let Some(a) = avoid.filter(|a| *a < n) {
        order.push(a);
    }
    order
}

/// Connects to the first broker that answers, trying them one after the other without
/// waiting: from a random one at start-up (spreading many workers over a cluster, as
/// oslo's shuffle does), then from the last one that worked, with `avoid` tried last.
/// Returns the connection and the index of its broker in `settings.brokers`.
pub(crate) async fn connect_any(
    settings: &AmqpSettings,
    purpose: &str,
    avoid: Option<usize>,
) -> Result<(Connection, BrokerAddr, usize), AmqpError> {
    let n = settings.brokers.len();
    let start = settings.next_broker.load(Ordering::Relaxed);
    let mut last = String::new();
    for idx in broker_order(n, start, avoid) {
        let addr = &settings.brokers[idx];
        let name = format!("zun-compute-rs:{}:{}", std::process::id(), purpose);
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        // Both connections propose a frame size (see `url::LISTEN_FRAME_MAX`): the publisher
        // a small one, the listener the broker's default, so lapin never grows its buffers.
        let frame_max = if purpose == "send" { url::FRAME_MAX } else { url::LISTEN_FRAME_MAX };
        let connect = async {
            lapin::ConnectionBuilder::new()?
                .with_uri_str(addr.uri(settings.heartbeat, Some(frame_max)))
                .with_properties(props)
                .with_tls_config(settings.tls.config.clone())
                .connect()
                .await
        };
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(conn)) => {
                settings.next_broker.store(idx, Ordering::Relaxed);
                tracing::info!(broker = %addr.display(), purpose, "connected to broker");
                return Ok((conn, addr.clone(), idx));
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out after 10 s".into(),
        }
        tracing::warn!(broker = %addr.display(), purpose, error = %last, "broker connection failed");
    }
    settings.next_broker.store((start + 1) % n.max(1), Ordering::Relaxed);
    let tried = settings.brokers.iter().map(BrokerAddr::display).collect::<Vec<_>>().join(", ");
    Err(AmqpError::Connect { tried, last })
}

/// oslo's queue arguments as an AMQP field table, with the same value types.
pub(crate) fn field_table(args: &[(String, ArgValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in args {
        let v = match v {
            ArgValue::I32(i) => AMQPValue::LongInt(*i),
            ArgValue::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            ArgValue::Bool(b) => AMQPValue::Boolean(*b),
        };
        t.insert(ShortString::from(k.as_str()), v);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::broker_order;

    #[test]
    fn failover_order_puts_the_failed_broker_last() {
        assert_eq!(broker_order(3, 0, None), vec![0, 1, 2]);
        assert_eq!(broker_order(3, 1, Some(1)), vec![2, 0, 1]);
        assert_eq!(broker_order(3, 2, Some(0)), vec![2, 1, 0]);
        assert_eq!(broker_order(1, 0, Some(0)), vec![0]);
        assert_eq!(broker_order(2, 0, Some(7)), vec![0, 1]);
    }
}
