//! Health and metrics: the shared [`Health`] flags and [`Metrics`] families every module
//! reports into, and the admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
pub mod server;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// What `/readyz` reports: each dependency's last known state.
#[derive(Debug, Default)]
pub struct Health {
    pub broker_consuming: AtomicBool,
    pub docker_ok: AtomicBool,
    pub db_ok: AtomicBool,
    /// Unix time of the last successful service heartbeat, 0 when none yet.
    pub last_heartbeat: AtomicI64,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.broker_consuming.load(Ordering::Relaxed) && self.docker_ok.load(Ordering::Relaxed) && self.db_ok.load(Ordering::Relaxed)
    }

    pub fn set(flag: &AtomicBool, v: bool) {
        flag.store(v, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub method: String,
    /// received, acked, rejected, duplicate, requeued
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub method: String,
    /// success or error
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub call: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric the worker exports.
pub struct Metrics {
    pub messages: Family<MessageLabels, Counter>,
    pub operation_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    pub docker_call_seconds: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub executor_queued: Gauge,
    pub executor_in_flight: Gauge,
    pub amqp_reconnects: Counter,
    pub heartbeat_age_seconds: Gauge,
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            messages: Family::default(),
            operation_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            docker_call_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            executor_queued: Gauge::default(),
            executor_in_flight: Gauge::default(),
            amqp_reconnects: Counter::default(),
            heartbeat_age_seconds: Gauge::default(),
            registry: Mutex::new(Registry::with_prefix("zun_compute")),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register("rpc_messages", "RPC deliveries by method and outcome", m.messages.clone());
            r.register("operation_seconds", "Operation latency by method and result", m.operation_seconds.clone());
            r.register("docker_call_seconds", "Docker API call latency", m.docker_call_seconds.clone());
            r.register("executor_queued", "Operations waiting in per-container queues", m.executor_queued.clone());
            r.register("executor_in_flight", "Operations running now", m.executor_in_flight.clone());
            r.register("amqp_reconnects", "Broker reconnections", m.amqp_reconnects.clone());
            r.register("heartbeat_age_seconds", "Seconds since the last service heartbeat", m.heartbeat_age_seconds.clone());
        }
        m
    }

    pub fn message(&self, method: &str, outcome: &str) {
        self.messages.get_or_create(&MessageLabels { method: method.to_string(), outcome: outcome.to_string() }).inc();
    }

    pub fn operation(&self, method: &str, ok: bool, seconds: f64) {
        let result = if ok { "success" } else { "error" };
        self.operation_seconds.get_or_create(&OperationLabels { method: method.to_string(), result: result.to_string() }).observe(seconds);
    }

    pub fn docker_call(&self, call: &str, seconds: f64) {
        self.docker_call_seconds.get_or_create(&CallLabels { call: call.to_string() }).observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self, health: &Health) -> String {
        let last = health.last_heartbeat.load(Ordering::Relaxed);
        let age = if last == 0 { -1 } else { chrono::Utc::now().timestamp() - last };
        self.heartbeat_age_seconds.set(age);
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.clear();
        }
        out
    }
}
