//! The admin HTTP listener (axum): `/healthz` (the process is alive), `/readyz` (broker
//! consuming, Docker and database reachable) and `/metrics` (Prometheus text format).
use super::{Health, Metrics};
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Clone)]
struct AdminState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { health, metrics })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let h = &s.health;
    let body = format!(
        "broker_consuming {}\ndocker {}\ndatabase {}\n",
        h.broker_consuming.load(Ordering::Relaxed),
        h.docker_ok.load(Ordering::Relaxed),
        h.db_ok.load(Ordering::Relaxed)
    );
    let code = if h.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body)
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode(&s.health))
}

/// Binds `listen` and serves until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    listen: &str,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(health, metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, "admin listener stopped");
        }
    });
    Ok(addr)
}
