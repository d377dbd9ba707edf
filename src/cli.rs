//! The operator subcommands: `check-config` and `cast` (a minimal zun-api, to try the
//! worker without OpenStack: it writes the container row and the action as zun-api
//! does, then sends the real oslo message).
use crate::amqp::client::RpcClient;
use crate::amqp::AmqpSettings;
use crate::config::Settings;
use crate::oslo::{Container, RequestContext};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Check(String),
    #[error("{0}")]
    Failed(String),
}

impl From<crate::worker::WorkerError> for CliError {
    fn from(e: crate::worker::WorkerError) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<CliError> for crate::worker::WorkerError {
    fn from(e: CliError) -> Self {
        crate::worker::WorkerError::Cli(e.to_string())
    }
}

#[derive(Args, Debug)]
pub struct CastArgs {
    #[command(subcommand)]
    pub op: CastOp,
    /// The compute host to send to (default: `[DEFAULT] host`).
    #[arg(long, global = true)]
    pub host: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CastOp {
    /// Create (and by default run) a container; waits until it settles and prints it.
    Create {
        #[arg(long)]
        image: String,
        #[arg(long)]
        name: Option<String>,
        /// Memory in MB.
        #[arg(long, default_value = "64")]
        memory: String,
        #[arg(long, default_value_t = 0.5)]
        cpu: f64,
        /// ifnotpresent, always or never.
        #[arg(long, default_value = "ifnotpresent")]
        pull_policy: String,
        #[arg(long)]
        no_run: bool,
        /// Command and arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Delete a container (force).
    Delete { uuid: String },
    /// `container_show`: the container as the worker sees it now.
    Show { uuid: String },
    /// `container_logs`.
    Logs { uuid: String },
}

/// `check-config`: the effective configuration, secrets masked, and reachability.
pub async fn check_config(settings: &Settings) -> Result<(), crate::worker::WorkerError> {
    print!("{}", settings.to_masked_ini());
    let mut failed = Vec::new();
    match AmqpSettings::from_config(settings) {
        Ok(a) => match crate::amqp::client::RpcClient::connect(Arc::new(a)).await {
            Ok(_) => println!("rabbitmq: ok"),
            Err(e) => {
                println!("rabbitmq: FAILED: {e}");
                failed.push("rabbitmq");
            }
        },
        Err(e) => {
            println!("rabbitmq: FAILED: {e}");
            failed.push("rabbitmq");
        }
    }
    match crate::worker::connect_docker(settings).await {
        Ok(d) => println!("docker: ok (API {})", d.api_version()),
        Err(e) => {
            println!("docker: FAILED: {e}");
            failed.push("docker");
        }
    }
    match crate::worker::open_store(settings).await {
        Ok(s) => println!("database: ok ({})", s.backend()),
        Err(e) => {
            println!("database: FAILED: {e}");
            failed.push("database");
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Check(format!("unreachable: {}", failed.join(", "))).into())
    }
}

fn context() -> RequestContext {
    let mut m = Map::new();
    m.insert("user_id".into(), json!("zun-compute-rs-cli"));
    m.insert("project_id".into(), json!("zun-compute-rs-cli"));
    m.insert("user".into(), json!("zun-compute-rs-cli"));
    m.insert("project".into(), json!("zun-compute-rs-cli"));
    m.insert("is_admin".into(), json!(true));
    m.insert("roles".into(), json!(["admin"]));
    m.insert("request_id".into(), json!(format!("req-{}", uuid::Uuid::new_v4())));
    m.insert("timestamp".into(), json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()));
    RequestContext::new(m)
}

fn print_container(c: &Container) {
    let get = |k: &str| c.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_else(|| "-".into());
    println!(
        "container {} name={} status={} task_state={} host={} docker_id={} reason={}",
        get("uuid"),
        get("name"),
        get("status"),
        get("task_state"),
        get("host"),
        get("container_id").chars().take(12).collect::<String>(),
        get("status_reason")
    );
}

/// `cast ...`: zun-api's side of one operation.
pub async fn cast(settings: &Settings, args: CastArgs) -> Result<(), crate::worker::WorkerError> {
    let host = args.host.clone().unwrap_or_else(|| settings.default.host.clone());
    let store = crate::worker::open_store(settings).await?;
    let amqp = Arc::new(AmqpSettings::from_config(settings)?);
    let client = RpcClient::connect(amqp).await?;
    let ctx = context();
    let request_id = ctx.request_id().unwrap_or_default().to_string();
    let timeout = Duration::from_secs(settings.default.rpc_response_timeout.max(1));
    let fail = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    match args.op {
        CastOp::Create { image, name, memory, cpu, pull_policy, no_run, command } => {
            let uuid = uuid::Uuid::new_v4().to_string();
            let mut data = Map::new();
            data.insert("uuid".into(), json!(uuid));
            data.insert("name".into(), json!(name.unwrap_or_else(|| format!("cli-{}", &uuid[..8]))));
            data.insert("image".into(), json!(image));
            data.insert("memory".into(), json!(memory));
            data.insert("cpu".into(), json!(cpu));
            data.insert("status".into(), json!("Creating"));
            data.insert("image_pull_policy".into(), json!(pull_policy));
            data.insert("project_id".into(), json!("zun-compute-rs-cli"));
            data.insert("user_id".into(), json!("zun-compute-rs-cli"));
            if !command.is_empty() {
                data.insert("command".into(), json!(command));
            }
            let mut c = Container::with_data(data);
            // zun-api: Container.create() then action_start('create').
            for k in c.data.keys().cloned().collect::<Vec<_>>() {
                c.changes.insert(k);
            }
            store.container_save(&mut c).await.map_err(|e| fail(&e))?;
            store
                .action_start(
                    &uuid,
                    &request_id,
                    Some("zun-compute-rs-cli"),
                    Some("zun-compute-rs-cli"),
                    "create",
                    chrono::Utc::now().naive_utc(),
                )
                .await
                .map_err(|e| fail(&e))?;
            let mut a = Map::new();
            a.insert("limits".into(), json!({}));
            a.insert("requested_networks".into(), json!([]));
            a.insert("requested_volumes".into(), json!({uuid.clone(): []}));
            a.insert("container".into(), c.to_primitive().to_value());
            a.insert("run".into(), json!(!no_run));
            a.insert("pci_requests".into(), Value::Null);
            client.cast(&ctx, Some(&host), "container_create", a).await?;
            println!("sent container_create for {uuid} to zun-compute.{host} (request {request_id})");
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let row = store.container_get(&uuid).await.map_err(|e| fail(&e))?;
                if let Some(row) = row {
                    // With run, Created is only the moment between create and start
                    // (task_state is empty there too, as in zun): not settled yet.
                    let settled = row.get_str("task_state").is_none()
                        && match row.get_str("status") {
                            Some("Running" | "Error" | "Stopped") => true,
                            Some("Created") => no_run,
                            _ => false,
                        };
                    if settled {
                        print_container(&row);
                        return if row.get_str("status") == Some("Error") {
                            Err(CliError::Failed("the container ended in Error".into()).into())
                        } else {
                            Ok(())
                        };
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(CliError::Failed(format!("container {uuid} did not settle within {timeout:?}")).into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        CastOp::Delete { uuid } => {
            let mut c =
                store.container_get(&uuid).await.map_err(|e| fail(&e))?.ok_or_else(|| CliError::Failed(format!("no container {uuid}")))?;
            c.set_status(crate::oslo::Status::Deleting, None);
            let mut a = Map::new();
            a.insert("container".into(), c.to_primitive().to_value());
            a.insert("force".into(), json!(true));
            client.cast(&ctx, Some(&host), "container_delete", a).await?;
            println!("sent container_delete for {uuid}");
            Ok(())
        }
        CastOp::Show { uuid } => {
            let c =
                store.container_get(&uuid).await.map_err(|e| fail(&e))?.ok_or_else(|| CliError::Failed(format!("no container {uuid}")))?;
            let mut a = Map::new();
            a.insert("container".into(), c.to_primitive().to_value());
            let v = client.call(&ctx, Some(&host), "container_show", a, timeout).await.map_err(|e| fail(&e))?;
            let shown = Container::from_value(&v).map_err(|e| fail(&e))?;
            print_container(&shown);
            Ok(())
        }
        CastOp::Logs { uuid } => {
            let c =
                store.container_get(&uuid).await.map_err(|e| fail(&e))?.ok_or_else(|| CliError::Failed(format!("no container {uuid}")))?;
            let mut a = Map::new();
            a.insert("container".into(), c.to_primitive().to_value());
            a.insert("stdout".into(), json!(true));
            a.insert("stderr".into(), json!(true));
            a.insert("timestamps".into(), json!(false));
            a.insert("tail".into(), json!("all"));
            a.insert("since".into(), Value::Null);
            let v = client.call(&ctx, Some(&host), "container_logs", a, timeout).await.map_err(|e| fail(&e))?;
            print!("{}", v.as_str().unwrap_or_default());
            Ok(())
        }
    }
}
