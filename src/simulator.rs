//! The agency simulator on embedded defaults: `longhaul up` runs it in
//! its own process when no `LONGHAUL_AGENCIES_FILE` names real agencies, so
//! the refresh sweep has someone to ask and `longhaul demo` can show a
//! change reaching a traveler.
//!
//! The simulator answers for the airlines of [`SAMPLE_AGENCIES`], each
//! under the names reservations carry for it; it changes nothing by itself
//! (`SimConfig::steady`), so every change a sweep finds is one someone
//! asked for: the demo's, through the control API
//! (`POST /_sim/{provider}/reservations/{number}/move?minutes=N`). `up`
//! writes where it listens to `<data-dir>/agency-simulator.json`
//! ([`SimulatorFile`]), which `demo` reads.

use std::path::{Path, PathBuf};

use anyhow::Context;
use longhaul_agency_sim::{Sim, SimConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The simulator's airlines: its provider name, and the names reservations
/// carry for it (the vendors table's canonical name first).
pub const SAMPLE_AGENCIES: &[(&str, &[&str])] =
    &[("latam", &["LATAM Airlines", "LATAM"]), ("skyways", &["SkyWays Airlines"])];

/// Reservations each simulated airline has.
const RESERVATIONS_PER_AIRLINE: u64 = 1_000;

/// Where `up` says the simulator listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorFile {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The simulator's airlines, as `SAMPLE_AGENCIES` names them.
    pub providers: Vec<String>,
}

impl SimulatorFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("agency-simulator.json")
    }

    /// The file `up` wrote, if it runs a simulator.
    pub fn read(data_dir: &Path) -> anyhow::Result<Option<SimulatorFile>> {
        let path = SimulatorFile::path(data_dir);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not what `up` writes", path.display()))?,
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

/// Starts the simulator on a loopback port, writes [`SimulatorFile`], and
/// returns it with the agencies configuration that points the sweep at it.
pub async fn start(data_dir: &Path) -> anyhow::Result<(Sim, longhaul_workers::agency::Agencies)> {
    let config = SimConfig {
        providers: SAMPLE_AGENCIES.iter().map(|(name, _)| (*name).to_owned()).collect(),
        reservations_per_provider: RESERVATIONS_PER_AIRLINE,
        latency: std::time::Duration::from_millis(5),
        ..SimConfig::steady(longhaul_agency_sim::start_of_today())
    };
    let sim = longhaul_agency_sim::start_local(config).await.context("starting the agency simulator")?;
    let providers: Vec<serde_json::Value> = SAMPLE_AGENCIES
        .iter()
        .map(|(name, aliases)| {
            json!({
                "name": name, "aliases": aliases, "base_url": sim.base_url(name),
                "batch_path": "/reservations/batch", "max_batch": 100, "rate_per_sec": 200.0, "concurrency": 4,
                "timeout_ms": 5_000, "max_retries": 2,
            })
        })
        .collect();
    let config = longhaul_workers::agency::config::from_json(&json!({ "providers": providers }).to_string())
        .context("the sample agencies configuration")?;
    let agencies = longhaul_workers::agency::build(&config).context("the sample agencies configuration")?;
    let file = SimulatorFile {
        url: format!("http://{}", sim.addr()),
        providers: SAMPLE_AGENCIES.iter().map(|(name, _)| (*name).to_owned()).collect(),
    };
    let path = SimulatorFile::path(data_dir);
    std::fs::write(&path, serde_json::to_vec_pretty(&file)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((sim, agencies))
}
