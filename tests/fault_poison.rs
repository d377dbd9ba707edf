//! Poison messages: a delivery that cannot be decoded, or whose method panics, is
//! answered (when it is a call), rejected without requeue and so dead-lettered when the
//! operator gave the queue a dead-letter exchange (by policy: oslo's queue arguments stay
//! as they are), with RabbitMQ's `x-death` saying why. It never comes back, and the
//! messages after it are served.
mod common;

use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use zun_compute_rs::admin::{Health, Metrics};
use zun_compute_rs::config::Settings;
use zun_compute_rs::rpc::{Endpoint, MethodFuture, Request};

/// `explode` panics inside its future; `echo` answers its arguments.
struct Volatile;

impl Endpoint for Volatile {
    fn submit(&self, req: Request) -> Option<MethodFuture> {
        match req.method.as_str() {
            "explode" => Some(Box::pin(async move {
                if req.args.contains_key("now") {
                    panic!("explode: a bug in an operation");
                }
                Ok(Value::Null)
            })),
            "echo" => Some(Box::pin(async move { Ok(Value::Object(req.args)) })),
            _ => None,
        }
    }
}

fn envelope(inner: Value) -> Vec<u8> {
    json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string().into_bytes()
}

fn props() -> BasicProperties {
    BasicProperties::default().with_content_type(ShortString::from("application/json")).with_delivery_mode(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_answered_dead_lettered_and_never_redelivered() {
    let vhost = Vhost::new("zunrs-poison");
    // The operator's dead-letter policy on the worker's queues.
    vhost.dead_letter_to_zun_dead();

    let conn = Connection::connect(&vhost_amqp(&vhost), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(ShortString::from("zun-dead"), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(ShortString::from("dead"), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_bind(
        ShortString::from("dead"),
        ShortString::from("zun-dead"),
        ShortString::from(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
    ch.queue_declare(ShortString::from(reply_q.as_str()), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut replies = ch
        .basic_consume(
            ShortString::from(reply_q.as_str()),
            ShortString::from("r"),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The server, as the worker runs it.
    let host = unique("node");
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "zun.conf", &format!("[DEFAULT]\nhost = {host}\ntransport_url = {}\n", vhost.url()));
    let settings = Settings::load(&[&conf], Vec::new()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let server = common::wire::serve(&settings, Arc::new(Volatile), metrics.clone()).await;

    let server_q = format!("zun-compute.{host}");
    let send = |body: Vec<u8>| {
        let ch = ch.clone();
        let q = server_q.clone();
        async move {
            ch.basic_publish(ShortString::from("zun"), ShortString::from(q.as_str()), BasicPublishOptions::default(), &body, props())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    // A call whose method panics, a cast whose method panics, an undecodable message,
    // then a good call.
    send(envelope(json!({"method": "explode", "args": {"now": true}, "_msg_id": "m-explode", "_reply_q": reply_q, "_unique_id": "u1"})))
        .await;
    send(envelope(json!({"method": "explode", "args": {"now": true}, "_unique_id": "u2"}))).await;
    send(b"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{not json".to_vec()).await;
    send(envelope(json!({"method": "echo", "args": {"after": "poison"}, "_msg_id": "m-echo", "_reply_q": reply_q, "_unique_id": "u3"})))
        .await;

    let mut got = std::collections::HashMap::new();
    while got.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(30), replies.next()).await.expect("replies in time").unwrap().unwrap();
        let outer: Value = serde_json::from_slice(&d.data).unwrap();
        let reply: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        if reply["ending"] == true {
            got.insert(reply["_msg_id"].as_str().unwrap().to_string(), reply);
        }
    }
    let failure: Value = serde_json::from_str(got["m-explode"]["failure"].as_str().expect("a failure reply")).unwrap();
    assert_eq!(failure["class"], "ZunException", "{failure}");
    assert_eq!(got["m-echo"]["result"], json!({"after": "poison"}));

    // The three poison messages are in the dead-letter queue, rejected; nothing is left
    // on the server queue or unacknowledged.
    wait_for(Duration::from_secs(20), "three dead letters", || async { (vhost.message_count("dead") == Some(3)).then_some(()) }).await;
    wait_for(Duration::from_secs(20), "the server queue to be empty", || async {
        (vhost.message_count(&server_q) == Some(0)).then_some(())
    })
    .await;
    for _ in 0..3 {
        let m = ch.basic_get(ShortString::from("dead"), BasicGetOptions { no_ack: true }).await.unwrap().expect("a dead letter");
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        let reason = match headers.inner().get("x-first-death-reason") {
            Some(AMQPValue::LongString(s)) => s.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(reason, "rejected", "{headers:?}");
    }
    let text = metrics.encode(&Health::default());
    assert!(text.contains("outcome=\"rejected\""), "{text}");

    server.shutdown().await;
    drop(conn);
}

fn vhost_amqp(v: &Vhost) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{}", v.name)
}
