//! State events in oslo's notification format (`messagingv2`), so ceilometer-style
//! consumers can follow containers: `container.<action>.start|end|error` around each
//! operation and `container.status.update` on every status or task_state transition.
//!
//! The message is what oslo's notifier sends: `{message_id, publisher_id, event_type,
//! priority, payload, timestamp}` plus `_unique_id` and the flattened `_context_*` keys,
//! in the 2.0 envelope, published on the control exchange with routing key
//! `<topic>.<priority>` (e.g. `notifications.info`), to a queue of that name.
//!
//! Publishing never blocks an operation: events go through a bounded queue to one
//! background task that keeps their order.
use crate::amqp::Publisher;
use crate::oslo::{self, RequestContext};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Event {
    pub event_type: String,
    pub priority: &'static str,
    pub payload: Value,
    pub context: Map<String, Value>,
}

/// Sends events; a disabled notifier drops them.
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
    publisher_id: String,
}

impl Notifier {
    /// A notifier that sends nothing (`driver = noop`, or no broker).
    pub fn disabled(host: &str) -> Self {
        Notifier { tx: None, publisher_id: format!("zun-compute.{host}") }
    }

    /// Starts the background sender. `topics` are `[oslo_messaging_notifications] topics`.
    pub fn start(host: &str, exchange: String, topics: Vec<String>, rabbit: oslo::RabbitOptions, publisher: Arc<Publisher>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Event>(4096);
        let publisher_id = format!("zun-compute.{host}");
        let pid = publisher_id.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let body = oslo::encode_envelope(&notification_message(&pid, &ev));
                for topic in &topics {
                    let (ex, queue, bind) =
                        oslo::topology::notification_queue(&exchange, topic, &ev.priority.to_ascii_lowercase(), &rabbit);
                    if let Err(e) = publisher.notify(&ex, &queue, &bind, &body).await {
                        tracing::warn!(event_type = %ev.event_type, error = %e, "notification not sent");
                    }
                }
            }
        });
        Notifier { tx: Some(tx), publisher_id }
    }

    pub fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    /// Queues an event (dropped with a warning when the queue is full).
    pub fn emit(&self, ctx: &RequestContext, event_type: &str, priority: &'static str, payload: Value) {
        let Some(tx) = &self.tx else { return };
        // The context travels as oslo's notifier sends it, but with its secrets
        // (auth_token, password, auth_token_info) redacted: consumers never need them.
        let context = ctx.redacted().into_iter().map(|(k, v)| (format!("_context_{k}"), v)).collect();
        let ev = Event { event_type: event_type.to_string(), priority, payload, context };
        if tx.try_send(ev).is_err() {
            tracing::warn!(event_type, "notification queue full; event dropped");
        }
    }

    pub fn info(&self, ctx: &RequestContext, event_type: &str, payload: Value) {
        self.emit(ctx, event_type, "INFO", payload)
    }

    pub fn error(&self, ctx: &RequestContext, event_type: &str, payload: Value) {
        self.emit(ctx, event_type, "ERROR", payload)
    }
}

/// The oslo notification message (before the envelope).
pub fn notification_message(publisher_id: &str, ev: &Event) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("message_id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
    m.insert("publisher_id".into(), Value::String(publisher_id.to_string()));
    m.insert("event_type".into(), Value::String(ev.event_type.clone()));
    m.insert("priority".into(), Value::String(ev.priority.to_string()));
    m.insert("payload".into(), ev.payload.clone());
    m.insert("timestamp".into(), Value::String(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()));
    m.insert("_unique_id".into(), Value::String(uuid::Uuid::new_v4().simple().to_string()));
    for (k, v) in &ev.context {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// The payload describing a container in events.
pub fn container_payload(c: &oslo::Container) -> Value {
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "uuid": get("uuid"),
        "name": get("name"),
        "project_id": get("project_id"),
        "user_id": get("user_id"),
        "image": get("image"),
        "host": get("host"),
        "status": get("status"),
        "status_reason": get("status_reason"),
        "task_state": get("task_state"),
        "container_id": get("container_id"),
    })
}
