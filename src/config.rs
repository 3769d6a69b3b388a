//! Settings from flags and `LONGHAUL_*` variables. A set variable overrides
//! its flag (the spec's 12-factor rule), and a bad value is an error that
//! names the variable, never a silent default.

use std::{collections::HashMap, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{bail, Context};
use longhaul_jobs::{queue::SqsConfig, Lane};
use longhaul_workers::{runtime::RetryPolicy, WorkerConfig};

/// The variable's value, if set and not empty.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The variable parsed, or `None` when unset.
pub fn env_parse<T: FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    env(name)
        .map(|value| value.trim().parse::<T>().map_err(|err| anyhow::anyhow!("{name}=`{value}` is invalid: {err}")))
        .transpose()
}

fn env_secs(name: &str) -> anyhow::Result<Option<Duration>> {
    env_parse::<f64>(name)?
        .map(|secs| {
            Duration::try_from_secs_f64(secs.max(0.0))
                .map_err(|err| anyhow::anyhow!("{name}=`{secs}` is invalid: {err}"))
        })
        .transpose()
}

pub fn data_dir(flag: &std::path::Path) -> PathBuf {
    env("LONGHAUL_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| flag.to_path_buf())
}

pub fn listen(flag: &str) -> String {
    env("LONGHAUL_LISTEN").unwrap_or_else(|| flag.to_owned())
}

/// Where a worker serves `/healthz`, `/readyz` and `/metrics`:
/// `LONGHAUL_WORKER_LISTEN`, else the flag. `off` serves nothing.
pub fn worker_listen(flag: &str) -> Option<String> {
    let listen = env("LONGHAUL_WORKER_LISTEN").unwrap_or_else(|| flag.to_owned());
    let listen = listen.trim();
    (!listen.is_empty() && !listen.eq_ignore_ascii_case("off")).then(|| listen.to_owned())
}

/// `LONGHAUL_DATABASE_URL`, or SQLite in the data dir.
pub fn database_url(data_dir: &std::path::Path) -> String {
    env("LONGHAUL_DATABASE_URL").unwrap_or_else(|| format!("sqlite://{}", data_dir.join("longhaul.db").display()))
}

/// `LONGHAUL_OBJECT_STORE`, or a directory in the data dir.
pub fn object_store_url(data_dir: &std::path::Path) -> String {
    env("LONGHAUL_OBJECT_STORE").unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()))
}

/// Which queue jobs wait on.
#[derive(Debug, Clone)]
pub enum QueueSettings {
    Embedded,
    Sqs(SqsConfig),
}

/// Deliveries of one SQS message before its job is dead-lettered, unless
/// `LONGHAUL_SQS_MAX_RECEIVE_COUNT` says otherwise. Terraform sets the
/// queues' redrive policy from the same number, plus a margin of 3.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;

/// `LONGHAUL_QUEUE` and, for `sqs`, where each lane's queues are: lane `L`
/// at `${LONGHAUL_SQS_QUEUE_PREFIX}L` (DLQ `…L-dlq`), unless
/// `LONGHAUL_SQS_QUEUE_URL_<LANE>` / `LONGHAUL_SQS_DLQ_URL_<LANE>` name them.
pub fn queue() -> anyhow::Result<QueueSettings> {
    queue_from(env)
}

/// [`queue`], reading variables through `var` (tests pass a map).
fn queue_from(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<QueueSettings> {
    match var("LONGHAUL_QUEUE").as_deref().map(str::trim) {
        None | Some("embedded") => Ok(QueueSettings::Embedded),
        Some("sqs") => {
            let max_receive_count = match var("LONGHAUL_SQS_MAX_RECEIVE_COUNT") {
                None => DEFAULT_MAX_RECEIVE_COUNT,
                Some(value) => value.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    anyhow::anyhow!(
                        "LONGHAUL_SQS_MAX_RECEIVE_COUNT=`{value}` is invalid: expected a whole number above 0"
                    )
                })?,
            };
            let prefix = var("LONGHAUL_SQS_QUEUE_PREFIX");
            let mut config = SqsConfig::from_prefix(prefix.as_deref().unwrap_or_default(), max_receive_count);
            for lane in Lane::ALL {
                let upper = lane.as_str().to_uppercase();
                let url = var(&format!("LONGHAUL_SQS_QUEUE_URL_{upper}"));
                let dlq_url = var(&format!("LONGHAUL_SQS_DLQ_URL_{upper}"));
                if prefix.is_none() && (url.is_none() || dlq_url.is_none()) {
                    bail!(
                        "LONGHAUL_QUEUE=sqs needs LONGHAUL_SQS_QUEUE_PREFIX (a queue URL prefix such as \
                         https://sqs.eu-west-1.amazonaws.com/123456789012/longhaul-), or both \
                         LONGHAUL_SQS_QUEUE_URL_{upper} and LONGHAUL_SQS_DLQ_URL_{upper}"
                    );
                }
                if let Some(queues) = config.lanes.get_mut(&lane) {
                    if let Some(url) = url {
                        queues.url = url;
                    }
                    if let Some(dlq_url) = dlq_url {
                        queues.dlq_url = dlq_url;
                    }
                }
            }
            Ok(QueueSettings::Sqs(config))
        }
        Some(other) => bail!("LONGHAUL_QUEUE=`{other}` is unknown; expected `embedded` or `sqs`"),
    }
}

pub fn body_limit() -> anyhow::Result<usize> {
    Ok(env_parse("LONGHAUL_BODY_LIMIT_BYTES")?.unwrap_or(longhaul_api::DEFAULT_BODY_LIMIT))
}

/// `name` parsed from `var` (the environment, or a test's map), or None.
fn parse_from<T: FromStr>(var: &impl Fn(&str) -> Option<String>, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    var(name)
        .map(|value| value.trim().parse::<T>().map_err(|err| anyhow::anyhow!("{name}=`{value}` is invalid: {err}")))
        .transpose()
}

/// Seconds, as a whole or fractional number; 0 means off (None).
fn secs_or_off(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: Option<Duration>,
) -> anyhow::Result<Option<Duration>> {
    match parse_from::<f64>(var, name)? {
        None => Ok(default),
        Some(secs) if secs.is_finite() && secs > 0.0 => Ok(Some(Duration::from_secs_f64(secs))),
        Some(0.0) => Ok(None),
        Some(secs) => bail!("{name}=`{secs}` is invalid: expected seconds, or 0 for no limit"),
    }
}

/// The API's rate limits and caps per user and tenant (`LONGHAUL_RATE_LIMIT_*`
/// and `LONGHAUL_MAX_*_PER_USER`); a 0 turns one off.
pub fn limits() -> anyhow::Result<longhaul_api::limits::Limits> {
    limits_from(env)
}

fn limits_from(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<longhaul_api::limits::Limits> {
    let defaults = longhaul_api::limits::Limits::default();
    let period = match parse_from::<f64>(&var, "LONGHAUL_RATE_LIMIT_PERIOD_SECS")? {
        None => defaults.period,
        Some(secs) if secs.is_finite() && secs >= 0.001 => Duration::from_secs_f64(secs),
        Some(secs) => bail!("LONGHAUL_RATE_LIMIT_PERIOD_SECS=`{secs}` is invalid: expected seconds, at least 0.001"),
    };
    Ok(longhaul_api::limits::Limits {
        period,
        jobs_per_user: parse_from(&var, "LONGHAUL_RATE_LIMIT_JOBS_PER_USER")?.unwrap_or(defaults.jobs_per_user),
        jobs_per_tenant: parse_from(&var, "LONGHAUL_RATE_LIMIT_JOBS_PER_TENANT")?.unwrap_or(defaults.jobs_per_tenant),
        writes_per_user: parse_from(&var, "LONGHAUL_RATE_LIMIT_WRITES_PER_USER")?.unwrap_or(defaults.writes_per_user),
        writes_per_tenant: parse_from(&var, "LONGHAUL_RATE_LIMIT_WRITES_PER_TENANT")?
            .unwrap_or(defaults.writes_per_tenant),
        streams_per_user: parse_from(&var, "LONGHAUL_MAX_STREAMS_PER_USER")?.unwrap_or(defaults.streams_per_user),
        media_per_user: parse_from(&var, "LONGHAUL_MAX_MEDIA_PER_USER")?.unwrap_or(defaults.media_per_user),
        mail_accounts_per_user: parse_from(&var, "LONGHAUL_MAX_MAIL_ACCOUNTS_PER_USER")?
            .unwrap_or(defaults.mail_accounts_per_user),
    })
}

/// How long API clients may take to send requests
/// (`LONGHAUL_HTTP_{HEADER,BODY,UPLOAD}_TIMEOUT_SECS`); a 0 turns one off.
pub fn http_timeouts() -> anyhow::Result<longhaul_api::server::HttpTimeouts> {
    http_timeouts_from(env)
}

fn http_timeouts_from(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<longhaul_api::server::HttpTimeouts> {
    let defaults = longhaul_api::server::HttpTimeouts::default();
    Ok(longhaul_api::server::HttpTimeouts {
        header_read: secs_or_off(&var, "LONGHAUL_HTTP_HEADER_TIMEOUT_SECS", defaults.header_read)?,
        body: secs_or_off(&var, "LONGHAUL_HTTP_BODY_TIMEOUT_SECS", defaults.body)?,
        upload: secs_or_off(&var, "LONGHAUL_HTTP_UPLOAD_TIMEOUT_SECS", defaults.upload)?,
    })
}

/// How tokens are verified: the dev key given, and the identity provider's
/// JWKS (`LONGHAUL_JWKS_URL`), issuer (`LONGHAUL_JWT_ISSUER`) and app
/// clients (`LONGHAUL_JWT_AUDIENCE`, comma-separated).
pub fn auth(dev_key: Option<Vec<u8>>) -> longhaul_api::auth::AuthConfig {
    auth_from(env, dev_key)
}

fn auth_from(var: impl Fn(&str) -> Option<String>, dev_key: Option<Vec<u8>>) -> longhaul_api::auth::AuthConfig {
    let audiences = var("LONGHAUL_JWT_AUDIENCE")
        .map(|list| list.split(',').map(str::trim).filter(|aud| !aud.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    longhaul_api::auth::AuthConfig {
        dev_key,
        jwks_url: var("LONGHAUL_JWKS_URL"),
        issuer: var("LONGHAUL_JWT_ISSUER").map(|issuer| issuer.trim().to_owned()),
        audiences,
    }
}

/// The worker runtime's settings.
pub fn worker(lanes_flag: &[String], concurrency_flag: Option<usize>) -> anyhow::Result<WorkerConfig> {
    let defaults = WorkerConfig::default();
    let lane_names: Vec<String> = match env("LONGHAUL_LANES") {
        Some(value) => value.split(',').map(|lane| lane.trim().to_owned()).filter(|l| !l.is_empty()).collect(),
        None => lanes_flag.to_vec(),
    };
    let lanes: Vec<Lane> = if lane_names.is_empty() {
        Lane::ALL.to_vec()
    } else {
        lane_names
            .iter()
            .map(|name| name.parse::<Lane>().with_context(|| "expected video, reports, email, refresh or default"))
            .collect::<anyhow::Result<_>>()?
    };
    let concurrency = env_parse::<usize>("LONGHAUL_CONCURRENCY")?.or(concurrency_flag);
    if concurrency == Some(0) {
        bail!("the concurrency must be at least 1");
    }
    let lease = env_secs("LONGHAUL_LEASE_SECS")?.unwrap_or(defaults.lease).max(Duration::from_secs(1));
    let heartbeat = env_secs("LONGHAUL_HEARTBEAT_SECS")?.unwrap_or(lease / 3);
    if heartbeat >= lease {
        bail!("LONGHAUL_HEARTBEAT_SECS must be shorter than the lease ({}s)", lease.as_secs_f64());
    }
    let retry = RetryPolicy {
        base: env_parse::<u64>("LONGHAUL_RETRY_BASE_MS")?.map(Duration::from_millis).unwrap_or(defaults.retry.base),
        max: env_secs("LONGHAUL_RETRY_MAX_SECS")?.unwrap_or(defaults.retry.max),
    };
    Ok(WorkerConfig {
        worker_id: env("LONGHAUL_WORKER_ID").unwrap_or(defaults.worker_id),
        lanes: lanes
            .into_iter()
            .map(|lane| (lane, concurrency.unwrap_or_else(|| lane.default_concurrency())))
            .collect(),
        lease,
        heartbeat,
        poll_interval: env_parse::<u64>("LONGHAUL_POLL_INTERVAL_MS")?
            .map(Duration::from_millis)
            .unwrap_or(defaults.poll_interval)
            .max(Duration::from_millis(10)),
        shutdown_grace: env_secs("LONGHAUL_SHUTDOWN_GRACE_SECS")?.unwrap_or(defaults.shutdown_grace),
        reap_interval: env_secs("LONGHAUL_REAP_INTERVAL_SECS")?
            .unwrap_or(defaults.reap_interval)
            .max(Duration::from_millis(100)),
        retention: env_secs("LONGHAUL_RETENTION_SECS")?.unwrap_or(defaults.retention),
        retry,
        timeouts: HashMap::new(),
        mail_poll: longhaul_jobs::travel::mail::PollSchedule {
            every: env_secs("LONGHAUL_MAIL_POLL_SECS")?.unwrap_or(defaults.mail_poll.every).max(Duration::from_secs(1)),
            ..defaults.mail_poll
        },
        sweep: sweep_config()?,
        tenant_share: tenant_share()?,
        ..defaults
    })
}

/// A tenant's share of a lane's running slots when `LONGHAUL_TENANT_SHARE`
/// is unset: half, so that one tenant's backlog always leaves the other
/// half of every lane to the rest.
pub const DEFAULT_TENANT_SHARE: f64 = 0.5;

/// `LONGHAUL_TENANT_SHARE`: the largest share (above 0, at most 1) of a
/// lane's running slots, across every live worker, that one tenant's jobs
/// may hold at once. `1` (or `off`) lifts the cap.
fn tenant_share() -> anyhow::Result<Option<f64>> {
    match env("LONGHAUL_TENANT_SHARE").as_deref().map(str::trim) {
        None => Ok(Some(DEFAULT_TENANT_SHARE)),
        Some(off) if off.eq_ignore_ascii_case("off") => Ok(None),
        Some(value) => match value.parse::<f64>() {
            Ok(share) if share > 0.0 && share < 1.0 => Ok(Some(share)),
            Ok(1.0) => Ok(None),
            _ => bail!("LONGHAUL_TENANT_SHARE=`{value}` is invalid: expected a fraction above 0 and at most 1, or off"),
        },
    }
}

/// The reservation sweep: every `LONGHAUL_SWEEP_INTERVAL_SECS` (default 300;
/// 0 turns sweeps off), in shards of about `LONGHAUL_SWEEP_SHARD_SIZE`
/// active reservations (default 10000).
fn sweep_config() -> anyhow::Result<Option<longhaul_workers::runtime::SweepConfig>> {
    let defaults = longhaul_workers::runtime::SweepConfig::default();
    let interval = env_secs("LONGHAUL_SWEEP_INTERVAL_SECS")?.unwrap_or(defaults.interval);
    if interval.is_zero() {
        return Ok(None);
    }
    let shard_size = env_parse::<u32>("LONGHAUL_SWEEP_SHARD_SIZE")?.unwrap_or(defaults.shard_size);
    if shard_size == 0 {
        bail!("LONGHAUL_SWEEP_SHARD_SIZE must be at least 1");
    }
    Ok(Some(longhaul_workers::runtime::SweepConfig { interval, shard_size }))
}

/// The agencies `reservation_refresh` asks, from the JSON file
/// `LONGHAUL_AGENCIES_FILE` names (see the README); none when it is unset.
pub fn agencies() -> anyhow::Result<longhaul_workers::agency::Agencies> {
    let Some(path) = env("LONGHAUL_AGENCIES_FILE") else {
        return Ok(longhaul_workers::agency::Agencies::default());
    };
    let config = longhaul_workers::agency::config::load(std::path::Path::new(&path))
        .with_context(|| format!("LONGHAUL_AGENCIES_FILE={path}"))?;
    longhaul_workers::agency::build(&config).with_context(|| format!("LONGHAUL_AGENCIES_FILE={path}"))
}

/// How long polls wait on an IMAP server: `LONGHAUL_MAIL_READ_TIMEOUT_SECS`
/// (its silence while we wait for an answer) and
/// `LONGHAUL_MAIL_COMMAND_TIMEOUT_SECS` (one command, start to end).
pub fn imap_limits() -> anyhow::Result<longhaul_workers::kinds::email_poll::ImapLimits> {
    let defaults = longhaul_workers::kinds::email_poll::ImapLimits::default();
    let read_timeout = env_secs("LONGHAUL_MAIL_READ_TIMEOUT_SECS")?.unwrap_or(defaults.read_timeout);
    let command_timeout = env_secs("LONGHAUL_MAIL_COMMAND_TIMEOUT_SECS")?.unwrap_or(defaults.command_timeout);
    if read_timeout.is_zero() || command_timeout.is_zero() {
        bail!("LONGHAUL_MAIL_READ_TIMEOUT_SECS and LONGHAUL_MAIL_COMMAND_TIMEOUT_SECS must be above 0");
    }
    Ok(longhaul_workers::kinds::email_poll::ImapLimits { read_timeout, command_timeout, ..defaults })
}

/// How long raw analytics events stay in the database once their hour is in
/// the lake: `LONGHAUL_EVENTS_RAW_RETENTION_HOURS` (168, a week, by
/// default), the time there is to re-run an export from them.
pub fn events_raw_retention() -> anyhow::Result<Duration> {
    match env_parse::<u64>("LONGHAUL_EVENTS_RAW_RETENTION_HOURS")? {
        None => Ok(longhaul_workers::kinds::ExportSettings::default().raw_retention),
        Some(0) => bail!("LONGHAUL_EVENTS_RAW_RETENTION_HOURS must be above 0"),
        Some(hours) if hours > 24 * 730 => bail!("LONGHAUL_EVENTS_RAW_RETENTION_HOURS must be at most 17520 (2 years)"),
        Some(hours) => Ok(Duration::from_secs(hours * 3600)),
    }
}

/// A yes/no variable: `true`/`1`/`yes` or `false`/`0`/`no`; None when unset.
pub fn flag(name: &str) -> anyhow::Result<Option<bool>> {
    match env(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if ["1", "true", "yes"].contains(&v.as_str()) => Ok(Some(true)),
        Some(v) if ["0", "false", "no"].contains(&v.as_str()) => Ok(Some(false)),
        Some(v) => anyhow::bail!("{name}=`{v}` is invalid: expected true or false"),
    }
}

/// The key-encryption keys that seal mail credentials:
/// `LONGHAUL_SECRET_KEYS` (`id:base64[,id:base64…]`, the first seals), or
/// else the data dir's `secret.key`, which `up` creates (mode 0600) when
/// `create` is set. None when neither is there: connecting an inbox is then
/// a 503 that says what to set.
pub fn secrets(
    data_dir: &std::path::Path,
    create: bool,
) -> anyhow::Result<Option<longhaul_jobs::travel::mail::Envelope>> {
    use longhaul_jobs::travel::mail::{Envelope, LocalKeys, SECRET_KEYS_VAR};
    let keys = match env(SECRET_KEYS_VAR) {
        Some(spec) => LocalKeys::parse(&spec)?,
        None => {
            let path = data_dir.join("secret.key");
            if !create && !path.exists() {
                return Ok(None);
            }
            LocalKeys::load_or_create(&path)?
        }
    };
    Ok(Some(Envelope::new(std::sync::Arc::new(keys))))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<QueueSettings> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        queue_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_queue_is_embedded_unless_told_otherwise() {
        assert!(matches!(settings(&[]), Ok(QueueSettings::Embedded)));
        assert!(matches!(settings(&[("LONGHAUL_QUEUE", "embedded")]), Ok(QueueSettings::Embedded)));
        let err = settings(&[("LONGHAUL_QUEUE", "kafka")]).expect_err("unknown");
        assert!(err.to_string().contains("`kafka` is unknown"), "{err}");
    }

    #[test]
    fn sqs_lanes_come_from_the_prefix_or_their_own_urls() {
        let prefix = "https://sqs.eu-west-1.amazonaws.com/123456789012/longhaul-";
        let Ok(QueueSettings::Sqs(config)) = settings(&[
            ("LONGHAUL_QUEUE", "sqs"),
            ("LONGHAUL_SQS_QUEUE_PREFIX", prefix),
            ("LONGHAUL_SQS_QUEUE_URL_VIDEO", "https://sqs.example/video-fast"),
        ]) else {
            panic!("expected SQS settings");
        };
        assert_eq!(config.lanes[&Lane::Reports].url, format!("{prefix}reports"));
        assert_eq!(config.lanes[&Lane::Reports].dlq_url, format!("{prefix}reports-dlq"));
        assert_eq!(config.lanes[&Lane::Video].url, "https://sqs.example/video-fast");
        assert_eq!(config.lanes[&Lane::Video].dlq_url, format!("{prefix}video-dlq"));
        assert_eq!(config.max_receive_count, DEFAULT_MAX_RECEIVE_COUNT);
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn limits_default_to_the_apis_and_zero_turns_one_off() {
        let defaults = longhaul_api::limits::Limits::default();
        let limits = limits_from(vars(&[])).expect("defaults");
        assert_eq!((limits.jobs_per_user, limits.period), (defaults.jobs_per_user, defaults.period));
        let limits = limits_from(vars(&[
            ("LONGHAUL_RATE_LIMIT_PERIOD_SECS", "0.5"),
            ("LONGHAUL_RATE_LIMIT_JOBS_PER_USER", "0"),
            ("LONGHAUL_MAX_MEDIA_PER_USER", "7"),
        ]))
        .expect("set");
        assert_eq!((limits.period, limits.jobs_per_user, limits.media_per_user), (Duration::from_millis(500), 0, 7));
        let err = limits_from(vars(&[("LONGHAUL_RATE_LIMIT_WRITES_PER_USER", "-1")])).expect_err("negative");
        assert!(err.to_string().contains("LONGHAUL_RATE_LIMIT_WRITES_PER_USER"), "{err}");
        assert!(limits_from(vars(&[("LONGHAUL_RATE_LIMIT_PERIOD_SECS", "0")])).is_err());
    }

    #[test]
    fn http_timeouts_are_seconds_and_zero_is_off() {
        let timeouts = http_timeouts_from(vars(&[
            ("LONGHAUL_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("LONGHAUL_HTTP_BODY_TIMEOUT_SECS", "2.5"),
        ]))
        .expect("set");
        assert_eq!(timeouts.header_read, None);
        assert_eq!(timeouts.body, Some(Duration::from_millis(2500)));
        assert_eq!(timeouts.upload, longhaul_api::server::HttpTimeouts::default().upload);
        assert!(http_timeouts_from(vars(&[("LONGHAUL_HTTP_UPLOAD_TIMEOUT_SECS", "-3")])).is_err());
    }

    #[test]
    fn the_audience_is_a_comma_separated_list() {
        let auth = auth_from(
            vars(&[("LONGHAUL_JWT_AUDIENCE", " app-ios, app-android ,,"), ("LONGHAUL_JWT_ISSUER", "https://idp")]),
            None,
        );
        assert_eq!(auth.audiences, ["app-ios", "app-android"]);
        assert_eq!(auth.issuer.as_deref(), Some("https://idp"));
        assert!(auth_from(vars(&[]), None).audiences.is_empty());
    }

    #[test]
    fn sqs_without_queues_or_with_a_bad_receive_count_is_a_clear_error() {
        let err = settings(&[("LONGHAUL_QUEUE", "sqs")]).expect_err("no queues");
        assert!(err.to_string().contains("LONGHAUL_SQS_QUEUE_PREFIX"), "{err}");
        let err = settings(&[
            ("LONGHAUL_QUEUE", "sqs"),
            ("LONGHAUL_SQS_QUEUE_PREFIX", "https://q/"),
            ("LONGHAUL_SQS_MAX_RECEIVE_COUNT", "0"),
        ])
        .expect_err("zero");
        assert!(err.to_string().contains("LONGHAUL_SQS_MAX_RECEIVE_COUNT"), "{err}");
    }
}
