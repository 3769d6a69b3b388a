//! Logs, metrics and traces.
//!
//! Logs: JSON lines for machines (the default when stderr is not a
//! terminal), readable text for people. `LONGHAUL_LOG` is the filter
//! (`tracing` directives such as `info,longhaul_workers=debug`).
//!
//! Metrics: one Prometheus recorder per process, rendered by `/metrics` on
//! the API and on workers. Durations are histograms with fixed buckets.
//!
//! Traces: with the `otlp` feature, spans are exported over OTLP (HTTP and
//! protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` names a collector.

use std::{
    io::IsTerminal,
    sync::{Arc, OnceLock},
    time::Duration,
};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use crate::config::env;

pub fn init(quiet: bool) -> anyhow::Result<()> {
    let filter = match env("LONGHAUL_LOG") {
        Some(directives) => EnvFilter::try_new(&directives)
            .map_err(|err| anyhow::anyhow!("LONGHAUL_LOG=`{directives}` is not a valid filter: {err}"))?,
        None => EnvFilter::new(if quiet { "warn" } else { "info" }),
    };
    let terminal = std::io::stderr().is_terminal();
    let json = match env("LONGHAUL_LOG_FORMAT").as_deref() {
        Some("json") => true,
        Some("text") => false,
        Some(other) => anyhow::bail!("LONGHAUL_LOG_FORMAT=`{other}` is unknown; expected `json` or `text`"),
        None => !terminal,
    };
    let logs = if json {
        fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).with_ansi(terminal).boxed()
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(logs);
    // Commands that print for a person export no traces.
    #[cfg(feature = "otlp")]
    let subscriber = subscriber.with(if quiet { None } else { otlp::layer()? });
    subscriber.try_init().map_err(|err| anyhow::anyhow!("cannot set up logging: {err}"))
}

/// Sends the spans still buffered, and stops the exporter. Call it once the
/// process's work is done; it blocks until the collector answers or the
/// exporter gives up. Nothing to do without the `otlp` feature.
pub async fn shutdown() {
    #[cfg(feature = "otlp")]
    if let Err(err) = tokio::task::spawn_blocking(otlp::shutdown).await {
        tracing::warn!(error = %err, "cannot flush traces");
    }
}

/// Job attempts: from a few milliseconds (noop) to two hours (a year video).
const JOB_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
    3600.0, 7200.0,
];

/// API requests, up to the slowest upload.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How old an agency's change is when a sweep finds it: about the sweep
/// interval (5 minutes), and much longer when sweeps fall behind.
const STALENESS_BUCKETS: &[f64] =
    &[10.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 450.0, 600.0, 900.0, 1800.0, 3600.0, 21600.0, 86400.0];

/// How often histogram samples are folded into their buckets between
/// scrapes, so that a process nobody scrapes does not keep them all.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's metrics, for `/metrics`: installs a Prometheus recorder the
/// first time, and hands out its renderer. `None` (with a warning) if another
/// recorder was installed first.
pub fn metrics() -> Option<Arc<dyn Fn() -> String + Send + Sync>> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| match install_recorder() {
        Ok(handle) => {
            describe_metrics();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
                std::thread::sleep(UPKEEP);
                upkeep.run_upkeep();
            });
            if let Err(err) = spawned {
                tracing::warn!(error = %err, "cannot start the metrics upkeep; histograms are folded at each scrape only");
            }
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot record metrics; /metrics will answer 404");
            None
        }
    });
    let handle = handle.clone()?;
    Some(Arc::new(move || handle.render()))
}

fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    let histograms = [
        ("longhaul_job_duration_seconds", JOB_BUCKETS),
        ("longhaul_http_request_duration_seconds", HTTP_BUCKETS),
        ("longhaul_sweep_staleness_seconds", STALENESS_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in histograms {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)?;
    }
    builder.install_recorder()
}

/// The `# HELP` lines of the metrics longhaul records.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    describe_counter!(
        "longhaul_jobs_total",
        "Attempts whose outcome a worker committed, by kind and status (succeeded, retried, dead, cancelled)."
    );
    describe_histogram!("longhaul_job_duration_seconds", Unit::Seconds, "How long committed attempts ran, by kind.");
    describe_counter!("longhaul_lease_extensions_total", "Leases a worker's heartbeat extended, by lane.");
    describe_counter!("longhaul_leases_lost_total", "Running attempts whose lease a worker found lost, by lane.");
    describe_gauge!("longhaul_queue_depth", "Jobs queued and due, by lane.");
    describe_gauge!(
        "longhaul_queue_oldest_age_seconds",
        Unit::Seconds,
        "How long the oldest due job has waited, by lane."
    );
    describe_gauge!("longhaul_queue_in_flight", "Jobs running, by lane.");
    describe_gauge!("longhaul_queue_delayed", "Jobs queued but not due yet (delayed or backing off), by lane.");
    describe_gauge!("longhaul_queue_dead", "Dead jobs, by lane.");
    describe_gauge!("longhaul_queue_paused", "1 when the lane is paused, else 0.");
    describe_counter!("longhaul_http_requests_total", "API requests, by method, route template and status.");
    describe_histogram!(
        "longhaul_http_request_duration_seconds",
        Unit::Seconds,
        "How long API requests took until their response headers, by method and route template."
    );
    describe_counter!("longhaul_sqs_requests_total", "SQS requests sent, by operation.");
    describe_histogram!(
        "longhaul_sweep_staleness_seconds",
        Unit::Seconds,
        "How old an agency's change was when a sweep found it."
    );
}

/// The OpenTelemetry exporter: spans go to an OTLP collector over HTTP.
#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use anyhow::Context;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
    use tracing_subscriber::registry::LookupSpan;

    use crate::config::env;

    /// Kept for [`shutdown`], which flushes it.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The layer that exports spans, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED`
    /// is not `true`. The exporter reads the other standard variables
    /// (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`); the service is
    /// `OTEL_SERVICE_NAME`, by default `longhaul`.
    pub fn layer<S>(
    ) -> anyhow::Result<Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        if env("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .context("cannot set up the OTLP exporter (OTEL_EXPORTER_OTLP_*)")?;
        let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "longhaul".to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = provider.tracer("longhaul");
        let _ = PROVIDER.set(provider);
        Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    /// Flushes and stops the exporter. Blocking.
    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            if let Err(err) = provider.shutdown() {
                tracing::warn!(error = %err, "cannot flush traces to the OTLP collector");
            }
        }
    }
}
