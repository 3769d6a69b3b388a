//! The simulator as a command: flags, start, serve until a signal.

use std::{io::Write, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::{start, start_of_today, SimConfig};

/// Flags of the agency simulator command.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// The simulated providers, comma-separated; each is served under
    /// `http://ADDR/{provider}`.
    #[arg(long, value_delimiter = ',', default_value = "skyways,grandhotels")]
    pub providers: Vec<String>,
    /// Reservations per provider.
    #[arg(long, default_value_t = 1_000)]
    pub reservations: u64,
    /// Fraction of all reservations changed per period.
    #[arg(long, default_value_t = 0.01)]
    pub change_fraction: f64,
    /// The period of `--change-fraction`, in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub period_secs: f64,
    /// Latency of every provider request, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub latency_ms: u64,
    /// Up to this much more latency at random, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub jitter_ms: u64,
    /// Fraction of provider requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of provider requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// `Retry-After` of an injected 429, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Most items per batch request.
    #[arg(long, default_value_t = 100)]
    pub max_batch: usize,
    /// Where initial dates are laid out from (RFC 3339); the start of today
    /// (UTC) if not given.
    #[arg(long, value_parser = parse_rfc3339)]
    pub anchor: Option<DateTime<Utc>>,
    /// Seed of the changes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|err| format!("`{text}` is not an RFC 3339 time: {err}"))
}

impl Args {
    /// The simulator configuration these flags describe.
    pub fn config(&self) -> anyhow::Result<SimConfig> {
        let period = Duration::try_from_secs_f64(self.period_secs)
            .with_context(|| format!("--period-secs: `{}` is not a duration", self.period_secs))?;
        let config = SimConfig {
            providers: self.providers.iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
            reservations_per_provider: self.reservations,
            change_fraction: self.change_fraction,
            period,
            latency: Duration::from_millis(self.latency_ms),
            latency_jitter: Duration::from_millis(self.jitter_ms),
            error_rate: self.error_rate,
            throttle_rate: self.throttle_rate,
            retry_after_secs: self.retry_after_secs,
            max_batch: self.max_batch,
            anchor: self.anchor.unwrap_or_else(start_of_today),
            seed: self.seed,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Runs the simulator the flags describe: prints `listening on
/// http://ADDR` as one line on standard output once it accepts requests,
/// then serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("agency simulator: listening on {}", args.listen))?;
    let sim = start(listener, config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{}", sim.addr()).context("writing to standard output")?;
        stdout.flush().context("writing to standard output")?;
    }
    wait_for_signal().await?;
    tracing::info!("agency simulator: stopping");
    sim.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("listening for Ctrl-C"),
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("listening for Ctrl-C")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "sim",
            "--providers",
            "skyways,grandhotels,rails",
            "--reservations",
            "1000000",
            "--change-fraction",
            "0.05",
            "--period-secs",
            "0.5",
            "--latency-ms",
            "2",
            "--jitter-ms",
            "0",
            "--error-rate",
            "0.1",
            "--anchor",
            "2030-01-01T00:00:00+02:00",
            "--seed",
            "9",
        ])
        .expect("valid flags");
        let config = cli.args.config().expect("a valid config");
        assert_eq!(config.providers, ["skyways", "grandhotels", "rails"]);
        assert_eq!(config.reservations_per_provider, 1_000_000);
        assert_eq!(config.period, Duration::from_millis(500));
        assert_eq!(config.latency, Duration::from_millis(2));
        assert_eq!(config.latency_jitter, Duration::ZERO);
        assert_eq!(config.error_rate, 0.1);
        assert_eq!(config.anchor.to_rfc3339(), "2029-12-31T22:00:00+00:00");
        assert_eq!(config.seed, 9);
        assert_eq!(config.max_batch, 100);
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Cli::try_parse_from(["sim", "--anchor", "yesterday"]).is_err());
        let cli = Cli::try_parse_from(["sim", "--error-rate", "1.5"]).expect("parses");
        assert!(cli.args.config().is_err());
        let cli = Cli::try_parse_from(["sim", "--period-secs=-1"]).expect("parses");
        assert!(cli.args.config().is_err());
        let cli = Cli::try_parse_from(["sim", "--providers", "Sky Ways"]).expect("parses");
        assert!(cli.args.config().is_err());
    }
}
