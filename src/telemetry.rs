//! Logs: JSON lines for machines (the default when stderr is not a
//! terminal), readable text for people. `LONGHAUL_LOG` is the filter.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

pub fn init(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("LONGHAUL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = match std::env::var("LONGHAUL_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).with_span_list(false).init();
    } else {
        builder.init();
    }
}
