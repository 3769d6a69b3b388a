//! Liveness, readiness and the OpenAPI document: endpoints anyone may call.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{extract::State, http::header, response::IntoResponse, Json};
use longhaul_jobs::DynStore;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{problem::Problem, AppState};

/// One dependency that must answer for the API to take traffic: the database,
/// the queue, the object store. The CLI adds what its configuration uses.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// A short name for the problem detail and logs, such as `database`.
    fn name(&self) -> &str;
    /// Ok when the dependency answers. Keep it cheap: it runs on every probe.
    async fn check(&self) -> anyhow::Result<()>;
}

/// The store's round trip, always part of readiness.
pub(crate) struct StoreReady(pub DynStore);

#[async_trait]
impl ReadinessCheck for StoreReady {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> anyhow::Result<()> {
        Ok(self.0.ping().await?)
    }
}

/// A probe that hangs is as bad as one that fails: Kubernetes would wait for
/// its own timeout. Answer within this.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness: the process answers. Checks no dependency, so that a database
/// outage does not make Kubernetes restart every API pod.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = HealthStatus)))]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus { status: "ok" })
}

/// Readiness: every dependency answers, so the pod may take traffic.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = HealthStatus),
        (status = 503, description = "A dependency is unreachable"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthStatus>, Problem> {
    let checks = state.readiness.iter().map(|check| run_check(Arc::clone(check)));
    let failures: Vec<String> = futures::future::join_all(checks).await.into_iter().flatten().collect();
    if failures.is_empty() {
        Ok(Json(HealthStatus { status: "ready" }))
    } else {
        Err(Problem::unavailable(format!("not ready: {} unreachable", failures.join(", "))))
    }
}

/// The name of the check if it failed. The cause is logged, not returned: the
/// probe is public, and errors may name hosts.
async fn run_check(check: Arc<dyn ReadinessCheck>) -> Option<String> {
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check.check()).await;
    let error = match outcome {
        Ok(Ok(())) => return None,
        Ok(Err(err)) => format!("{err:#}"),
        Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
    };
    tracing::warn!(check = check.name(), error, "readiness check failed");
    Some(check.name().to_owned())
}

/// Prometheus metrics of this process, in the text exposition format, with
/// the queues' gauges read from the store (at most every two seconds).
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 404, description = "This process records no metrics"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    match &state.metrics {
        Some(render) => {
            crate::metrics::refresh_queue_gauges(&state.store).await;
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response()
        }
        None => Problem::not_found("this process records no metrics").into_response(),
    }
}
