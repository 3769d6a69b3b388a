//! Logs: JSON lines for machines (the default when stderr is not a
//! terminal), readable text for people. `LONGHAUL_LOG` is the filter
//! (`tracing` directives such as `info,longhaul_workers=debug`).

use std::{
    io::IsTerminal,
    sync::{Arc, OnceLock},
};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use tracing_subscriber::{fmt, EnvFilter};

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
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(terminal);
    if json {
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        builder.init();
    }
    Ok(())
}

/// The process's metrics, for `/metrics`: installs a Prometheus recorder the
/// first time, and hands out its renderer. `None` (with a warning) if another
/// recorder was installed first.
pub fn metrics() -> Option<Arc<dyn Fn() -> String + Send + Sync>> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    let handle = HANDLE.get_or_init(|| match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!(error = %err, "cannot record metrics; /metrics will answer 404");
            None
        }
    });
    let handle = handle.clone()?;
    Some(Arc::new(move || handle.render()))
}
