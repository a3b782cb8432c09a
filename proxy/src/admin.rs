//! The admin port: liveness and readiness for orchestrators, and Prometheus
//! metrics.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Shared;

/// `/healthz`: the process is serving. `/readyz`: it accepts new clients
/// (false while draining, and while a clustered node cannot reach its bus).
pub fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if shared.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".to_owned());
    }
    let bus = shared.bus.readiness().borrow().clone();
    if bus.ready {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", bus.reason),
        )
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(http::header::CONTENT_TYPE, content_type)],
        shared.metrics.render(),
    )
}

/// Serves the admin port until `stopped` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let result = axum::serve(listener, routes(shared))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin server failed");
    }
}
