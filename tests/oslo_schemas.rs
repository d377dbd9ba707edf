//! The JSON Schemas in `schemas/` stay in line with the codec and the fixtures: they
//! parse, the Container schema lists exactly the fields of the field table, and the
//! captured bodies satisfy each schema's top-level `required` / `additionalProperties`
//! (a deliberately tiny check; no full validator is pulled in).
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use zun_compute_rs::oslo::container_fields::CONTAINER_FIELDS;
use zun_compute_rs::oslo::{decode_body, BodyMeta};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("schemas").join(name)).unwrap()).unwrap()
}

fn top_level_ok(schema: &Value, v: &Value, what: &str) {
    let obj = v.as_object().unwrap_or_else(|| panic!("{what}: not an object"));
    for r in schema["required"].as_array().unwrap() {
        assert!(obj.contains_key(r.as_str().unwrap()), "{what}: missing {r}");
    }
    if schema["additionalProperties"] == Value::Bool(false) {
        let props = schema["properties"].as_object().unwrap();
        for k in obj.keys() {
            assert!(props.contains_key(k), "{what}: unexpected key {k}");
        }
    }
}

#[test]
fn container_schema_matches_field_table() {
    let s = schema("zun-container-primitive.schema.json");
    let in_schema: BTreeSet<String> = s["properties"]["zun_object.data"]["properties"].as_object().unwrap().keys().cloned().collect();
    let in_table: BTreeSet<String> = CONTAINER_FIELDS.iter().map(|f| f.name.to_string()).collect();
    assert_eq!(in_schema, in_table);
}

#[test]
fn fixtures_satisfy_top_level_schemas() {
    let (env, req, rep, fail) = (
        schema("oslo-envelope.schema.json"),
        schema("oslo-rpc-request.schema.json"),
        schema("oslo-rpc-reply.schema.json"),
        schema("oslo-failure.schema.json"),
    );
    let dir = root().join("tests/fixtures/oslo");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(raw) = fx.get("body_raw").and_then(Value::as_str) else { continue };
        let what = path.file_name().unwrap().to_string_lossy().to_string();
        top_level_ok(&env, &serde_json::from_str(raw).unwrap(), &what);
        let msg = Value::Object(decode_body(&BodyMeta::oslo_default(), raw.as_bytes()).unwrap());
        if msg.get("result").is_some() {
            top_level_ok(&rep, &msg, &what);
            if let Some(f) = fx["body_decoded"].get("failure_decoded") {
                top_level_ok(&fail, f, &what);
            }
        } else {
            top_level_ok(&req, &msg, &what);
        }
    }
}
