//! The Keystone session against the real Keystone 30 and Placement 16 of the project's
//! stack (`scripts/openstack.sh up keystone placement`): password and application
//! credential auth, catalog lookup, the token cache shared by concurrent callers, a
//! revoked token renewed once on 401, renewal across the stack's 180 s token lifetime,
//! user-token calls, and clear errors.
mod common;

use common::openstack::StackLock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zun_compute_rs::config::{ClientSection, KeystoneAuthSection, Secret};
use zun_compute_rs::openstack::{Auth, OpenStackError, Request, Service, Session, UserToken};

fn stack_env() -> HashMap<String, String> {
    common::openstack::up_only(&["keystone", "placement"])
}

fn password_conf(env: &HashMap<String, String>, user: &str, password: &str, project: &str) -> KeystoneAuthSection {
    KeystoneAuthSection {
        auth_url: Some(env["OS_AUTH_URL"].clone()),
        username: Some(user.into()),
        password: Some(Secret::new(password)),
        user_domain_name: Some("Default".into()),
        project_name: Some(project.into()),
        project_domain_name: Some("Default".into()),
        ..Default::default()
    }
}

fn public() -> ClientSection {
    ClientSection { region_name: Some("RegionOne".into()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_catalog_and_one_token_for_concurrent_callers() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let session = Session::new(&password_conf(&env, "zun", "zun", "service")).unwrap();
    let started = Instant::now();
    // Twenty callers at once on a fresh session: one token request.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = session.clone();
        tasks.push(tokio::spawn(async move { s.token().await.map(|t| t.id.expose().to_string()) }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("token"));
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "callers got different tokens");
    assert_eq!(session.tokens_issued(), 1);
    eprintln!("20 concurrent callers got one token in {:?}", started.elapsed());
    let token = session.token().await.unwrap();
    assert!(token.project_id.is_some() && token.user_id.is_some());
    assert!(token.expires_at > chrono::Utc::now());

    // Catalog: Placement's public endpoint in RegionOne is the stack's.
    let placement = session.client(Service::Placement, &public()).unwrap();
    assert_eq!(placement.endpoint(Auth::Service).await.unwrap(), env["ZUNRS_OS_PLACEMENT_URL"].trim_end_matches('/'));
    let internal = session.client(Service::Placement, &ClientSection { endpoint_type: "internalURL".into(), ..public() }).unwrap();
    assert!(internal.endpoint(Auth::Service).await.is_ok());
    let r = placement.call(Auth::Service, &Request::get("/resource_providers").microversion("1.14")).await.unwrap();
    assert!(r.json::<Value>().unwrap()["resource_providers"].is_array());
    assert_eq!(session.tokens_issued(), 1, "the cached token serves every call");

    // A region the catalog does not have: a clear error, no request made.
    let nowhere = session.client(Service::Placement, &ClientSection { region_name: Some("RegionNine".into()), ..public() }).unwrap();
    let e = nowhere.call(Auth::Service, &Request::get("/")).await.unwrap_err();
    assert!(matches!(e, OpenStackError::NoEndpoint { .. }), "{e}");
    assert!(e.to_string().contains("placement") && e.to_string().contains("RegionNine"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_credential_auth_by_id_and_by_name() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let zun = Session::new(&password_conf(&env, "zun", "zun", "service")).unwrap();
    let token = zun.token().await.unwrap();
    let user_id = token.user_id.clone().unwrap();
    let identity = zun.client_for_type(Service::Keystone, "identity", &public()).unwrap();
    let name = common::unique("zunrs-appcred");
    let created = identity
        .call(
            Auth::Service,
            &Request::post(format!("/users/{user_id}/application_credentials"), json!({"application_credential": {"name": name}})),
        )
        .await
        .expect("create an application credential");
    let cred: Value = created.json().unwrap();
    let id = cred["application_credential"]["id"].as_str().unwrap().to_string();
    let secret = cred["application_credential"]["secret"].as_str().unwrap().to_string();

    let result = async {
        let by_id = KeystoneAuthSection {
            auth_type: "v3applicationcredential".into(),
            auth_url: Some(env["OS_AUTH_URL"].clone()),
            application_credential_id: Some(id.clone()),
            application_credential_secret: Some(Secret::new(secret.clone())),
            ..Default::default()
        };
        let s = Session::new(&by_id).unwrap();
        let t = s.token().await.expect("token from the application credential id");
        assert_eq!(t.user_id.as_deref(), Some(user_id.as_str()));
        assert_eq!(t.project_id, token.project_id, "an application credential keeps its project scope");
        let p = s.client(Service::Placement, &public()).unwrap();
        p.call(Auth::Service, &Request::get("/resource_providers")).await.expect("Placement with the application credential");

        let by_name = KeystoneAuthSection {
            application_credential_id: None,
            application_credential_name: Some(name.clone()),
            username: Some("zun".into()),
            user_domain_name: Some("Default".into()),
            ..by_id.clone()
        };
        Session::new(&by_name).unwrap().token().await.expect("token from the application credential name");

        let wrong = KeystoneAuthSection { application_credential_secret: Some(Secret::new("not-the-secret")), ..by_id };
        let e = Session::new(&wrong).unwrap().token().await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
        assert!(e.to_string().starts_with("Keystone POST /v3/auth/tokens returned HTTP 401"), "{e}");
        assert!(!e.to_string().contains("not-the-secret"));
    }
    .await;
    let _ = identity.call(Auth::Service, &Request::delete(format!("/users/{user_id}/application_credentials/{id}"))).await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_once_and_the_call_retried() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let zun = Session::new(&password_conf(&env, "zun", "zun", "service")).unwrap();
    let admin = Session::new(&password_conf(&env, "admin", "admin", "admin")).unwrap();
    // Keystone checks tokens itself (no middleware cache): a revoked token is refused at once.
    let identity = zun.client_for_type(Service::Keystone, "identity", &public()).unwrap();
    let admin_identity = admin.client_for_type(Service::Keystone, "identity", &public()).unwrap();
    identity.call(Auth::Service, &Request::get("/auth/projects")).await.expect("first call");
    let first = zun.token().await.unwrap();
    assert_eq!(zun.tokens_issued(), 1);

    admin_identity
        .call(Auth::Service, &Request::delete("/auth/tokens").header("X-Subject-Token", first.id.expose()))
        .await
        .expect("revoke the zun token");

    let r = identity.call(Auth::Service, &Request::get("/auth/projects")).await.expect("the call after revocation");
    assert!(r.json::<Value>().unwrap()["projects"].is_array());
    assert_eq!(zun.tokens_issued(), 2, "one renewal after the 401");
    assert_ne!(zun.token().await.unwrap().id, first.id);

    // A user token is never renewed: its 401 is the caller's error, naming the service.
    let user = UserToken::new(first.id.expose(), None);
    let e = identity.call(Auth::User(&user), &Request::get("/auth/projects")).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().starts_with("Keystone GET /auth/projects returned HTTP 401"), "{e}");
    assert_eq!(zun.tokens_issued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_token_calls_use_the_users_catalog() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let zun = Session::new(&password_conf(&env, "zun", "zun", "service")).unwrap();
    // The user's token and token body, as keystonemiddleware hands them to zun-api and
    // zun-api puts them in the RPC context (auth_token, auth_token_info).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}},
                               "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let resp = http.post(format!("{}/auth/tokens", env["OS_AUTH_URL"])).json(&body).send().await.unwrap();
    let token = resp.headers()["x-subject-token"].to_str().unwrap().to_string();
    let info: Value = resp.json().await.unwrap();
    let user = UserToken::new(&token, Some(&info));
    assert!(user.has_catalog());

    let placement = zun.client(Service::Placement, &public()).unwrap();
    let r = placement.call(Auth::User(&user), &Request::get("/resource_providers")).await.expect("Placement as the user");
    assert!(r.json::<Value>().unwrap()["resource_providers"].is_array());
    assert_eq!(zun.tokens_issued(), 0, "a call as the user with its own catalog needs no service token");

    let bogus = UserToken::new("not-a-token", Some(&info));
    let e = placement.call(Auth::User(&bogus), &Request::get("/resource_providers")).await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().starts_with("Placement GET /resource_providers returned HTTP 401"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unreachable_keystone_are_clear_errors() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let e = Session::new(&password_conf(&env, "zun", "wrong-password", "service")).unwrap().token().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().starts_with("Keystone POST /v3/auth/tokens returned HTTP 401"), "{e}");
    assert!(!e.to_string().contains("wrong-password"));

    // Nobody listens on port 9 of loopback: refused, retried twice, then a clear error.
    let conf = KeystoneAuthSection { auth_url: Some("http://127.0.0.1:9/v3".into()), ..password_conf(&env, "zun", "zun", "service") };
    let started = Instant::now();
    let e = Session::new(&conf).unwrap().token().await.unwrap_err();
    assert!(matches!(e, OpenStackError::Unreachable { .. }), "{e}");
    assert!(e.to_string().starts_with("Keystone POST /v3/auth/tokens unreachable"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The stack's tokens live 180 s. The session renews before expiry (a third of the
/// lifetime before, here 60 s) and every call in between and after the first token's
/// expiry succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_working_across_token_expiry() {
    let _lock = StackLock::shared();
    let env = stack_env();
    let lifetime: i64 = env.get("ZUNRS_OS_TOKEN_LIFETIME").and_then(|v| v.parse().ok()).unwrap_or(180);
    assert!(lifetime <= 600, "the stack's token lifetime is {lifetime} s: too long for this test");
    let session = Session::new(&password_conf(&env, "zun", "zun", "service")).unwrap();
    let placement = session.client(Service::Placement, &public()).unwrap();
    let first = session.token().await.unwrap();
    let deadline = first.expires_at + chrono::Duration::seconds(10);
    let mut calls = 0;
    while chrono::Utc::now() < deadline {
        placement.call(Auth::Service, &Request::get("/resource_providers")).await.unwrap_or_else(|e| panic!("call {calls} failed: {e}"));
        calls += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let now = session.token().await.unwrap();
    assert_ne!(now.id, first.id, "the token was renewed");
    assert!(now.expires_at > first.expires_at);
    assert_eq!(session.tokens_issued(), 2, "exactly one renewal over {calls} calls");
}
