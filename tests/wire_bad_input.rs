//! Bad input on the worker's queues: 1,000 malformed or truncated messages are each
//! settled (acknowledged or rejected, never requeued forever), every call among them
//! gets a failure reply, and a good call sent after them is answered.
mod common;

use common::wire::start_server;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn props(content_type: Option<&str>) -> BasicProperties {
    let p = BasicProperties::default().with_delivery_mode(2);
    match content_type {
        Some(ct) => p.with_content_type(ShortString::from(ct)),
        None => p,
    }
}

/// Message `i` of the bad batch: (body, content type, msg_id when it is a call whose
/// reply queue can be read from the body).
fn bad_message(i: usize, reply_q: &str) -> (Vec<u8>, Option<&'static str>, Option<String>) {
    let msg_id = format!("bad{i:05}");
    let call = |extra: Value| {
        let mut m = json!({"_msg_id": msg_id, "_reply_q": reply_q, "_unique_id": format!("u-bad-{i}")});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let envelope = |inner: &Value| json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string();
    match i % 12 {
        0 => (b"this is not json".to_vec(), Some("application/json"), None),
        1 => {
            let full = envelope(&call(json!({"method": "echo_args", "args": {"x": i}})));
            (full.as_bytes()[..full.len() * (i % 7 + 1) / 9].to_vec(), Some("application/json"), None)
        }
        // oslo rejects these silently; we also answer the caller, whose queue we can read.
        2 => (envelope(&call(json!({"method": "echo_args", "args": {}}))).into_bytes(), Some("text/plain"), Some(msg_id)),
        3 => (envelope(&call(json!({"method": "echo_args", "args": {}}))).into_bytes(), None, Some(msg_id)),
        4 => {
            let inner = call(json!({"method": "echo_args", "args": {}})).to_string();
            (json!({"oslo.version": "2.1", "oslo.message": inner}).to_string().into_bytes(), Some("application/json"), Some(msg_id))
        }
        5 => (json!({"oslo.version": "2.0", "oslo.message": 42}).to_string().into_bytes(), Some("application/json"), None),
        6 => (envelope(&call(json!({"args": {"x": 1}}))).into_bytes(), Some("application/json"), Some(msg_id)),
        7 => (
            envelope(&call(json!({"method": "echo_args", "version": 1.0, "args": {}}))).into_bytes(),
            Some("application/json"),
            Some(msg_id),
        ),
        8 => (envelope(&call(json!({"method": "echo_args", "args": [1, 2]}))).into_bytes(), Some("application/json"), Some(msg_id)),
        9 => (
            envelope(&call(json!({"method": "echo_args", "args": {"c": {"zun_object.name": "Teapot", "zun_object.namespace": "zun",
                "zun_object.version": "1.0", "zun_object.data": {}}}})))
            .into_bytes(),
            Some("application/json"),
            Some(msg_id),
        ),
        10 => (vec![0xff, 0xfe, 0x00, 0x7b], Some("application/json"), None),
        _ => (
            envelope(&call(json!({"method": "echo_args", "args": {"c": {"zun_object.name": "Container", "zun_object.namespace": "zun",
                "zun_object.version": "7.3", "zun_object.data": {}}}})))
            .into_bytes(),
            Some("application/json"),
            Some(msg_id),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_messages_then_a_good_one() {
    let h = start_server("").await;
    let conn =
        Connection::connect(&format!("amqp://guest:guest@127.0.0.1:5672/{}", h.vhost.name), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let reply_q = format!("reply_{}", uuid::Uuid::new_v4().simple());
    ch.queue_declare(ShortString::from(reply_q.as_str()), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    let mut replies = ch
        .basic_consume(
            ShortString::from(reply_q.as_str()),
            ShortString::from("t"),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let server_q = format!("zun-compute.{}", h.host);
    let mut expected_failures = HashSet::new();
    for i in 0..1000 {
        let (body, ct, call) = bad_message(i, &reply_q);
        if let Some(id) = call {
            expected_failures.insert(id);
        }
        ch.basic_publish(ShortString::from("zun"), ShortString::from(server_q.as_str()), BasicPublishOptions::default(), &body, props(ct))
            .await
            .unwrap();
    }
    // The good call after them.
    let good = json!({"oslo.version": "2.0", "oslo.message": json!({"method": "echo_args", "args": {"ok": true},
        "_msg_id": "good", "_reply_q": reply_q, "_unique_id": "u-good", "_context_request_id": "req-1"}).to_string()});
    ch.basic_publish(
        ShortString::from("zun"),
        ShortString::from(server_q.as_str()),
        BasicPublishOptions::default(),
        good.to_string().as_bytes(),
        props(Some("application/json")),
    )
    .await
    .unwrap();

    let mut failures = HashSet::new();
    let mut good_reply = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while good_reply.is_none() || failures.len() < expected_failures.len() {
        let d = tokio::time::timeout_at(deadline, replies.next())
            .await
            .unwrap_or_else(|_| panic!("replies: {} of {} failures, good={good_reply:?}", failures.len(), expected_failures.len()))
            .unwrap()
            .unwrap();
        let outer: Value = serde_json::from_slice(&d.data).unwrap();
        let reply: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        let id = reply["_msg_id"].as_str().unwrap().to_string();
        assert_eq!(reply["ending"], true);
        if id == "good" {
            assert_eq!(reply["result"], json!({"ok": true}));
            good_reply = Some(reply);
        } else {
            let f: Value = serde_json::from_str(reply["failure"].as_str().expect("a failure")).unwrap();
            assert!(f["class"].is_string() && f["message"].is_string(), "{f}");
            assert!(failures.insert(id), "one reply per call");
        }
    }
    assert_eq!(failures, expected_failures);
    // Nothing is left on the server queue: every bad message was settled.
    let vh = &h.vhost;
    wait_for(Duration::from_secs(20), "the server queue to drain", || async { (vh.message_count(&server_q) == Some(0)).then_some(()) })
        .await;
    let text = h.metrics.encode(&zun_compute_rs::admin::Health::default());
    assert!(text.contains("outcome=\"rejected\""), "{text}");
    drop(conn);
    h.shutdown().await;
}

/// A reply whose queue does not exist yet is retried (every 0.25 s) until the caller
/// declares it, and given up, with an error naming the queue, once its deadline passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waits_for_its_queue_until_the_deadline() {
    use std::sync::Arc;
    use std::time::Instant;
    use zun_compute_rs::amqp::{AmqpError, AmqpSettings, Publisher};
    use zun_compute_rs::oslo::Reply;
    use zun_compute_rs::rpc::ReplyTo;
    let vhost = Vhost::new("zunrs-reply");
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "zun.conf", &format!("[DEFAULT]\ntransport_url = {}\n", vhost.url()));
    let settings = zun_compute_rs::config::Settings::load(&[&conf], Vec::new()).unwrap();
    let publisher = Arc::new(Publisher::new(Arc::new(AmqpSettings::from_config(&settings).unwrap())));
    let conn =
        Connection::connect(&format!("amqp://guest:guest@127.0.0.1:5672/{}", vhost.name), ConnectionProperties::default()).await.unwrap();
    let ch = conn.create_channel().await.unwrap();

    // Declared a second after the first attempt: delivered by a retry.
    let late = ReplyTo { reply_q: format!("reply_{}", uuid::Uuid::new_v4().simple()), msg_id: "m1".into() };
    let p = publisher.clone();
    let to = late.clone();
    let sending =
        tokio::spawn(
            async move { p.send_reply(&to, &Reply::success("m1", json!({"ok": 1})), Instant::now() + Duration::from_secs(20)).await },
        );
    tokio::time::sleep(Duration::from_secs(1)).await; // the queue appears later, on purpose
    ch.queue_declare(ShortString::from(late.reply_q.as_str()), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), sending).await.expect("reply sent").unwrap().expect("delivered once the queue exists");
    assert_eq!(vhost.message_count(&late.reply_q), Some(1));

    // Never declared: abandoned at the deadline, not before, not long after.
    let never = ReplyTo { reply_q: format!("reply_{}", uuid::Uuid::new_v4().simple()), msg_id: "m2".into() };
    let started = Instant::now();
    let e = publisher.send_reply(&never, &Reply::success("m2", Value::Null), started + Duration::from_millis(1500)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(&e, AmqpError::ReplyAbandoned { reply_q, .. } if *reply_q == never.reply_q), "{e:?}");
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(10), "gave up after {took:?}");
}
