//! Golden-fixture tests of the oslo codec: every captured body decodes to what the real
//! libraries decoded, re-encodes byte for byte, and the server-tolerance probes are
//! accepted or rejected exactly as the real server settled them.
mod common;

use base64::Engine as _;
use serde_json::{Map, Value};
use std::path::PathBuf;
use zun_compute_rs::oslo::envelope::zlib_compress;
use zun_compute_rs::oslo::pyjson;
use zun_compute_rs::oslo::{
    check_object_version, decode_body, encode_envelope, BodyMeta, Container, ObjectPrimitive, RemoteFailure, Reply, RpcMessage,
};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oslo")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn index_files() -> Vec<String> {
    load("index.json")["files"].as_array().expect("index files").iter().map(|f| f.as_str().unwrap().to_string()).collect()
}

/// AMQP properties of a fixture (or a tolerance probe) as the codec needs them.
fn meta_of(props: &Value) -> BodyMeta {
    let headers = props.get("headers").or_else(|| props.get("application_headers"));
    BodyMeta {
        content_type: props.get("content_type").and_then(Value::as_str).map(str::to_string),
        content_encoding: props.get("content_encoding").and_then(Value::as_str).map(str::to_string),
        compression: headers.and_then(|h| h.get("compression")).and_then(Value::as_str).map(str::to_string),
    }
}

fn body_of(fx: &Value) -> Option<Vec<u8>> {
    if let Some(b64) = fx.get("body_b64").and_then(Value::as_str) {
        return Some(base64::engine::general_purpose::STANDARD.decode(b64).expect("body_b64"));
    }
    fx.get("body_raw").and_then(Value::as_str).map(|s| s.as_bytes().to_vec())
}

/// Every `zun_object.*` primitive inside a value.
fn primitives(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if ObjectPrimitive::is_primitive(v) {
                out.push(v.clone());
            }
            m.values().for_each(|x| primitives(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| primitives(x, out)),
        _ => {}
    }
}

/// Container objects round-trip and validate; every other object passes the receipt checks.
fn check_objects(v: &Value, what: &str) -> usize {
    let mut found = Vec::new();
    primitives(v, &mut found);
    for p in &found {
        let prim = ObjectPrimitive::from_value(p).unwrap_or_else(|e| panic!("{what}: {e}"));
        check_object_version(&prim).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&prim.to_value(), p, "{what}: primitive round trip");
        if ["Container", "Capsule", "CapsuleContainer", "CapsuleInitContainer"].contains(&prim.name.as_str()) {
            let c = Container::from_value(p).unwrap_or_else(|e| panic!("{what}: {e}"));
            c.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(&c.to_value(), p, "{what}: container round trip");
            // Typed accessors never panic on real data.
            let _ = (c.memory(), c.cpu(), c.command(), c.status(), c.restart_policy(), c.healthcheck(), c.exposed_ports());
            let _ = (c.addresses(), c.labels(), c.environment(), c.cpuset(), c.started_at(), c.ports(), c.task_state());
        }
    }
    found.len()
}

#[test]
fn every_body_fixture_round_trips() {
    let mut bodies = 0;
    for name in index_files() {
        let fx = load(&name);
        let Some(body) = body_of(&fx) else { continue };
        bodies += 1;
        let meta = meta_of(&fx["properties"]);
        let msg = decode_body(&meta, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = fx["body_decoded"]["oslo_message"].as_object().unwrap_or_else(|| panic!("{name}: no oslo_message"));
        assert_eq!(&msg, expected, "{name}: decoded message");

        // Byte-identical re-encode (Python json.dumps formatting, both layers).
        let plain = match meta.compression {
            Some(_) => {
                // The gzip capture: the decompressed body is the usual envelope, and our
                // compression is a zlib stream kombu can read back.
                let mut d = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&body[..]), &mut d).unwrap();
                let z = zlib_compress(&d);
                assert_eq!(decode_body(&meta, &z).unwrap(), msg, "{name}: recompressed");
                d
            }
            None => body.clone(),
        };
        assert_eq!(String::from_utf8_lossy(&encode_envelope(&msg)), String::from_utf8_lossy(&plain), "{name}: re-encoded envelope differs");
        assert_eq!(
            serde_json::from_slice::<Value>(&plain).unwrap()["oslo.message"],
            fx["body_decoded"]["envelope"]["oslo.message"],
            "{name}: envelope"
        );

        if msg.contains_key("result") || msg.contains_key("failure") {
            let reply = Reply::from_map(&msg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&reply.to_map(), expected, "{name}: reply round trip");
            if let Some(f) = &reply.failure {
                let failure = RemoteFailure::from_json_str(f).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&failure.to_json_string(), f, "{name}: failure string re-encoded byte for byte");
                assert_eq!(failure.to_value(), fx["body_decoded"]["failure_decoded"], "{name}: failure payload");
            }
            check_objects(&reply.result, &name);
        } else {
            let rpc = RpcMessage::from_map(msg.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = rpc.to_map();
            assert_eq!(pyjson::map_to_python_json(&back), pyjson::map_to_python_json(expected), "{name}: request order");
            assert_eq!(rpc.is_call(), expected.contains_key("_msg_id"), "{name}: call vs cast");
            rpc.method_name().unwrap_or_else(|e| panic!("{name}: {e}"));
            // Context: every _context_ key kept, in order, secrets hidden from Debug.
            let flat = rpc.context.to_flat();
            let ctx_keys: Vec<_> = expected.keys().filter(|k| k.starts_with("_context_")).cloned().collect();
            assert_eq!(flat.keys().cloned().collect::<Vec<_>>(), ctx_keys, "{name}: context keys");
            if let Some(tok) = rpc.context.auth_token() {
                assert!(!format!("{:?} {}", rpc.context, rpc.context).contains(tok), "{name}: token leaked");
            }
            check_objects(&rpc.args, &name);
        }
    }
    assert!(bodies >= 25, "only {bodies} body fixtures found");
}

#[test]
fn create_fixture_carries_a_container() {
    let fx = load("container_create_cast.json");
    let msg = decode_body(&meta_of(&fx["properties"]), &body_of(&fx).unwrap()).unwrap();
    let rpc = RpcMessage::from_map(msg).unwrap();
    assert_eq!(rpc.method_name(), Ok("container_create"));
    assert!(!rpc.is_call());
    let c = Container::from_value(rpc.arg("container").unwrap()).unwrap();
    assert_eq!(c.version, "1.44");
    assert_eq!(c.memory(), Some(512));
    assert_eq!(c.cpu(), Some(0.5));
    assert_eq!(c.image().as_deref(), Some("busybox:latest"));
    assert_eq!(c.restart_policy().unwrap().name, "on-failure");
}

#[test]
fn unicode_fixture_decodes_astral_characters() {
    let fx = load("container_create_cast_unicode.json");
    let body = body_of(&fx).unwrap();
    assert!(body.is_ascii());
    let rpc = RpcMessage::from_map(decode_body(&meta_of(&fx["properties"]), &body).unwrap()).unwrap();
    let c = Container::from_value(rpc.arg("container").unwrap()).unwrap();
    assert_eq!(c.labels().unwrap()["note"], "日本語 ✓ 🚀");
    assert_eq!(c.name_field().as_deref(), Some("café-☃"));
}

fn settled_ack(case: &Value, i: usize) -> bool {
    let s = case["server_settlement"][i].as_str().unwrap();
    assert!(s == "Basic.Ack" || s.starts_with("Basic.Reject"), "{s}");
    s == "Basic.Ack"
}

#[test]
fn server_tolerance_accepts_and_rejects_like_oslo() {
    let tol = load("server_tolerance.json");
    let cases = tol["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["case"].as_str().unwrap();
        for (i, sent) in case["sent"].as_array().unwrap().iter().enumerate() {
            let meta = meta_of(&sent["properties"]);
            let body = sent["body"].as_str().unwrap().as_bytes();
            let res = decode_body(&meta, body);
            assert_eq!(res.is_ok(), settled_ack(case, i), "{name}: {res:?}");
            if let Ok(m) = res {
                RpcMessage::from_map(m).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

/// The real compute endpoint (manager, executor, operations) over a private SQLite store,
/// with Docker unreachable: what the dispatcher and the methods answer, without side effects.
async fn real_manager(dir: &std::path::Path) -> std::sync::Arc<zun_compute_rs::compute::Manager> {
    use std::sync::Arc;
    use zun_compute_rs::admin::Metrics;
    use zun_compute_rs::compute::{Executor, Manager, Services};
    use zun_compute_rs::config::Settings;
    use zun_compute_rs::events::Notifier;
    use zun_compute_rs::store::Store;

    let store = Arc::new(Store::connect(None, &dir.join("zun.sqlite")).await.expect("sqlite store"));
    let docker = common::refused_docker(dir);
    let settings = Arc::new(Settings::load::<&std::path::Path>(&[], Vec::new()).unwrap());
    let metrics = Arc::new(Metrics::new());
    let host = "tolerance-node".to_string();
    let svc = Arc::new(Services::new(settings, store, Arc::new(docker), Arc::new(Notifier::disabled(&host)), metrics.clone(), host));
    Arc::new(Manager::new(svc, Executor::new(2, Some(metrics))))
}

/// The failures the real oslo server sent for the tolerance probes are what our real
/// dispatcher, in front of the real compute endpoint, answers to the same bytes.
#[tokio::test]
async fn server_tolerance_failures_match_ours() {
    use zun_compute_rs::rpc::{Dispatcher, Disposition};
    let dir = tempfile::tempdir().unwrap();
    let dispatcher = Dispatcher::new(real_manager(dir.path()).await);
    let tol = load("server_tolerance.json");
    let mut compared = 0;
    for case in tol["cases"].as_array().unwrap() {
        let name = case["case"].as_str().unwrap();
        let Some(want) = case["replies"].get(0).and_then(|r| r.get("failure_decoded")) else { continue };
        let sent = &case["sent"][0];
        let body = sent["body"].as_str().unwrap().as_bytes();
        let ours: RemoteFailure = match dispatcher.accept(&meta_of(&sent["properties"]), body, false) {
            Disposition::Run(run) => {
                assert!(run.reply_to.is_some(), "{name}: a call must be answered");
                match tokio::time::timeout(std::time::Duration::from_secs(30), run.future).await {
                    Ok(Err(e)) => e.to_failure(),
                    Ok(Ok(v)) => panic!("{name}: expected a failure, got {v}"),
                    Err(_) => panic!("{name}: no answer within 30 s"),
                }
            }
            Disposition::Reject { failure: Some(f), .. } => f,
            Disposition::Reject { error, failure: None, .. } => panic!("{name}: rejected without a reply: {error}"),
            Disposition::Duplicate { .. } | Disposition::Held { .. } => panic!("{name}: taken for a duplicate"),
        };
        assert_eq!(ours.class, want["class"], "{name}");
        assert_eq!(ours.module, want["module"], "{name}");
        assert_eq!(ours.message, want["message"], "{name}");
        compared += 1;
    }
    assert!(compared >= 7, "only {compared} failure cases in the fixture");
}

#[test]
fn older_object_version_is_accepted_and_echoed() {
    let tol = load("server_tolerance.json");
    let case = tol["cases"].as_array().unwrap().iter().find(|c| c["case"] == "object_version_older_minor_partial_data").unwrap();
    let result = &case["replies"][0]["result"];
    let c = Container::from_value(result).unwrap();
    c.validate().unwrap();
    assert_eq!(c.version, "1.0");
    assert_eq!(&c.to_value(), result);
}

/// Our constructors produce the captured failure payloads (all but the traceback).
#[test]
fn failure_constructors_match_captures() {
    let cases: Vec<(&str, RemoteFailure)> = vec![
        ("container_show_reply_failure.json", RemoteFailure::container_not_found("00000000-0000-0000-0000-00000000dead")),
        ("container_update_reply_failure_builtin.json", RemoteFailure::type_error("memory must be a string, got 1024")),
        ("reply_failure_no_such_method.json", RemoteFailure::no_such_method("container_teleport")),
        ("reply_failure_private_method.json", RemoteFailure::no_such_method("_private")),
        (
            "reply_failure_unsupported_version.json",
            RemoteFailure::unsupported_version(&Value::from("2.0"), Some(&Value::from("echo_args"))),
        ),
        (
            "reply_failure_unsupported_version_1_3.json",
            RemoteFailure::unsupported_version(&Value::from("1.3"), Some(&Value::from("echo_args"))),
        ),
        ("reply_failure_namespace.json", RemoteFailure::unsupported_version(&Value::from("1.0"), Some(&Value::from("echo_args")))),
    ];
    for (file, ours) in cases {
        let want = &load(file)["body_decoded"]["failure_decoded"];
        let mut ours_v: Map<String, Value> = ours.to_value().as_object().unwrap().clone();
        let mut want_v = want.as_object().unwrap().clone();
        ours_v.remove("tb");
        want_v.remove("tb");
        assert_eq!(ours_v, want_v, "{file}");
        assert!(ours.tb.first().unwrap().starts_with("Traceback"));
        assert!(ours.tb.last().unwrap().ends_with('\n'));
    }
}

#[test]
fn fanout_and_shared_topic_casts_are_casts() {
    for name in ["fanout_cast.json", "topic_cast_shared_queue.json", "container_delete_cast.json"] {
        let fx = load(name);
        let rpc = RpcMessage::from_map(decode_body(&meta_of(&fx["properties"]), &body_of(&fx).unwrap()).unwrap()).unwrap();
        assert!(!rpc.is_call(), "{name}");
        assert!(rpc.unique_id.is_some(), "{name}");
    }
}

#[test]
fn call_monitor_request_asks_for_heartbeats() {
    let fx = load("call_with_call_monitor_timeout_request.json");
    let rpc = RpcMessage::from_map(decode_body(&meta_of(&fx["properties"]), &body_of(&fx).unwrap()).unwrap()).unwrap();
    assert!(rpc.is_call());
    assert!(rpc.heartbeat_interval_secs().is_some());
    let hb = load("call_monitor_heartbeat_reply.json");
    let r = Reply::from_map(&decode_body(&meta_of(&hb["properties"]), &body_of(&hb).unwrap()).unwrap()).unwrap();
    assert!(!r.ending);
    let ours = Reply::heartbeat(&r.msg_id);
    assert_eq!((ours.result, ours.failure, ours.ending), (r.result, r.failure, r.ending));
}
