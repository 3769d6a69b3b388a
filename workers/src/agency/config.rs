//! The agencies' configuration: one entry per provider, read from a JSON
//! file, checked as a whole before anything runs.
//!
//! ```json
//! {"providers": [{
//!     "name": "skyways",
//!     "aliases": ["Skyways Airlines", "SKY"],
//!     "base_url": "https://api.skyways.example/v2",
//!     "batch_path": "/reservations/batch",
//!     "rate_per_sec": 20, "burst": 5, "concurrency": 4,
//!     "headers": {"Authorization": "env:SKYWAYS_TOKEN"},
//!     "statuses": {"HK": "confirmed", "XX": "cancelled"}
//! }]}
//! ```
//!
//! Every field but `name` and `base_url` has a default (see
//! [`ProviderConfig`]). A header value `env:VAR` is read from the
//! environment variable `VAR` (so API keys stay out of the file); loading
//! fails, naming the variable, if it is not set.

use std::{
    collections::{BTreeMap, HashMap},
    num::{NonZeroU32, NonZeroUsize},
    path::{Path, PathBuf},
    time::Duration,
};

use longhaul_jobs::travel::ReservationStatus;
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue},
    Url,
};
use serde::Deserialize;

use super::limit::MAX_RATE_PER_SEC;

/// The most items a batch may hold, the most requests in flight per
/// provider, and the most retries: beyond these a value is surely a typo.
const MAX_BATCH: usize = 10_000;
const MAX_CONCURRENCY: usize = 10_000;
const MAX_RETRIES: usize = 100;

/// Every configured provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgenciesConfig {
    pub providers: Vec<ProviderConfig>,
}

/// One provider's HTTP JSON API and how to treat it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The provider's name, in logs and metrics; reservations whose
    /// `provider` is this name (in any case) are routed to it.
    pub name: String,
    /// Other `provider` values routed to it, matched without regard to case
    /// or surrounding spaces.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The API's base URL (http or https); paths are appended to it.
    pub base_url: String,
    /// The path of one reservation, after `base_url`; `{number}` stands for
    /// the percent-encoded reservation number. Default
    /// `/reservations/{number}`.
    #[serde(default = "default_lookup_path")]
    pub lookup_path: String,
    /// The path of the batch endpoint, after `base_url`, if the provider has
    /// one (such as `/reservations/batch`); without it every look-up is a
    /// `GET` of its own.
    #[serde(default)]
    pub batch_path: Option<String>,
    /// The most look-ups per batch request. Default 100.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Requests per second on average. Default 50.
    #[serde(default = "default_rate")]
    pub rate_per_sec: f64,
    /// Requests at once after a quiet spell. Default: `rate_per_sec`
    /// rounded up.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Requests in flight at once. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long one request may take, response body included. Default
    /// 5,000 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of a request that failed with a 5xx, a 429, a timeout or a
    /// connection error. Default 3.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// The first retry's wait; each further one doubles it, plus random
    /// jitter. Default 200 ms.
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    /// The longest wait between tries, and the longest `Retry-After` waited
    /// for (a longer one fails the request at once). Default 10,000 ms.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Headers sent with every request; a value `env:VAR` is read from the
    /// environment variable `VAR`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Where the fields are in a reservation object.
    #[serde(default)]
    pub fields: FieldsConfig,
    /// The provider's status values and ours (`confirmed`, `cancelled`)
    /// they mean. A value not listed is read as one of ours.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
}

/// When a provider's circuit opens, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failed requests in a row (each after its retries) that open the
    /// circuit. Default 5.
    pub failure_threshold: u32,
    /// How long it stays open before one request probes. Default 30 s.
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, open_secs: 30 }
    }
}

/// JSON pointers (RFC 6901) to the fields of a reservation object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsConfig {
    /// Default `/status`.
    pub status: String,
    /// RFC 3339. Default `/starts_at`.
    pub starts_at: String,
    /// RFC 3339 or null. Default `/ends_at`.
    pub ends_at: String,
    /// Any JSON; kept as the reservation's agency details. Default
    /// `/details`.
    pub details: String,
    /// RFC 3339 or null. Default `/changed_at`.
    pub changed_at: String,
}

impl Default for FieldsConfig {
    fn default() -> Self {
        FieldsConfig {
            status: "/status".into(),
            starts_at: "/starts_at".into(),
            ends_at: "/ends_at".into(),
            details: "/details".into(),
            changed_at: "/changed_at".into(),
        }
    }
}

fn default_lookup_path() -> String {
    "/reservations/{number}".into()
}
fn default_max_batch() -> usize {
    100
}
fn default_rate() -> f64 {
    50.0
}
fn default_concurrency() -> usize {
    8
}
fn default_timeout_ms() -> u64 {
    5_000
}
fn default_max_retries() -> usize {
    3
}
fn default_backoff_base_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    10_000
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("agency configuration {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("agency configuration{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Parse { path: Option<PathBuf>, message: String },
    /// A provider's field has a value that cannot work.
    #[error("agency `{provider}`: {field}: {message}")]
    Invalid { provider: String, field: String, message: String },
    /// The shared HTTP client could not be built.
    #[error("agency HTTP client: {0}")]
    Client(String),
}

fn invalid(provider: &str, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { provider: provider.to_owned(), field: field.into(), message: message.into() }
}

/// Reads and checks the configuration in the JSON file at `path`.
pub fn load(path: &Path) -> Result<AgenciesConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    AgenciesConfig::parse(&text, Some(path))
}

/// Reads and checks a configuration from JSON text.
pub fn from_json(text: &str) -> Result<AgenciesConfig, ConfigError> {
    AgenciesConfig::parse(text, None)
}

impl AgenciesConfig {
    fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let config: AgenciesConfig = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|err| ConfigError::Parse { path: path.map(Path::to_owned), message: err.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every provider (reading the `env:` headers from the
    /// environment) and that no name or alias routes to two of them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(&|var| std::env::var(var).ok())
    }

    /// [`AgenciesConfig::validate`], with `env` in place of the environment.
    pub fn validate_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut routed: HashMap<String, &str> = HashMap::new();
        for provider in &self.providers {
            provider.checked(env)?;
            for name in provider.routed_names() {
                let key = name.trim().to_lowercase();
                if let Some(other) = routed.insert(key, &provider.name) {
                    if other == provider.name {
                        continue;
                    }
                    let message = format!("`{name}` is already routed to agency `{other}`");
                    return Err(invalid(&provider.name, "aliases", message));
                }
            }
        }
        Ok(())
    }
}

/// A provider's configuration, checked and in the types the adapter uses.
#[derive(Debug)]
pub(crate) struct Checked {
    pub base_url: String,
    pub lookup_path: String,
    pub batch_url: Option<Url>,
    pub max_batch: usize,
    pub burst: NonZeroU32,
    pub concurrency: NonZeroUsize,
    pub timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub open_for: Duration,
    pub headers: HeaderMap,
    pub statuses: HashMap<String, ReservationStatus>,
}

impl ProviderConfig {
    /// A provider named `name` at `base_url`, with every default: the wire
    /// protocol of `GET {base_url}/reservations/{number}`, no batch
    /// endpoint.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        ProviderConfig {
            name: name.into(),
            aliases: Vec::new(),
            base_url: base_url.into(),
            lookup_path: default_lookup_path(),
            batch_path: None,
            max_batch: default_max_batch(),
            rate_per_sec: default_rate(),
            burst: None,
            concurrency: default_concurrency(),
            timeout_ms: default_timeout_ms(),
            max_retries: default_max_retries(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            breaker: BreakerConfig::default(),
            headers: BTreeMap::new(),
            fields: FieldsConfig::default(),
            statuses: BTreeMap::new(),
        }
    }

    /// The `provider` values routed to it: its name and its aliases.
    pub fn routed_names(&self) -> Vec<String> {
        std::iter::once(&self.name).chain(&self.aliases).cloned().collect()
    }

    /// The burst in effect: `burst`, or `rate_per_sec` rounded up.
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| {
            let rounded = self.rate_per_sec.ceil();
            if rounded.is_finite() && rounded >= 1.0 {
                rounded.min(f64::from(u32::MAX)) as u32
            } else {
                1
            }
        })
    }

    /// Checks every field and converts them, reading `env:` headers through
    /// `env`.
    pub(crate) fn checked(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Checked, ConfigError> {
        let name = self.name.as_str();
        if name.trim().is_empty() {
            return Err(invalid("", "name", "must not be empty"));
        }
        if self.aliases.iter().any(|alias| alias.trim().is_empty()) {
            return Err(invalid(name, "aliases", "an alias must not be empty"));
        }

        let url = Url::parse(&self.base_url)
            .map_err(|err| invalid(name, "base_url", format!("`{}` is not a URL: {err}", self.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(name, "base_url", format!("`{}` is not an http or https URL", self.base_url)));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(name, "base_url", "must not have a query or fragment; put them in the paths"));
        }
        let base_url = self.base_url.trim_end_matches('/').to_owned();

        if !self.lookup_path.starts_with('/') || !self.lookup_path.contains("{number}") {
            let message = format!("`{}` must start with `/` and contain `{{number}}`", self.lookup_path);
            return Err(invalid(name, "lookup_path", message));
        }
        let sample = format!("{base_url}{}", self.lookup_path.replace("{number}", "X"));
        Url::parse(&sample).map_err(|err| invalid(name, "lookup_path", format!("does not form a URL: {err}")))?;
        let batch_url = match &self.batch_path {
            None => None,
            Some(path) if path.starts_with('/') => Some(
                Url::parse(&format!("{base_url}{path}"))
                    .map_err(|err| invalid(name, "batch_path", format!("does not form a URL: {err}")))?,
            ),
            Some(path) => return Err(invalid(name, "batch_path", format!("`{path}` must start with `/`"))),
        };

        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(invalid(name, "max_batch", format!("must be 1 to {MAX_BATCH}, got {}", self.max_batch)));
        }
        if !self.rate_per_sec.is_finite() || self.rate_per_sec <= 0.0 || self.rate_per_sec > MAX_RATE_PER_SEC {
            let message = format!("must be above 0 and at most {MAX_RATE_PER_SEC}, got {}", self.rate_per_sec);
            return Err(invalid(name, "rate_per_sec", message));
        }
        let burst =
            NonZeroU32::new(self.effective_burst()).ok_or_else(|| invalid(name, "burst", "must be at least 1"))?;
        let concurrency =
            NonZeroUsize::new(self.concurrency).filter(|c| c.get() <= MAX_CONCURRENCY).ok_or_else(|| {
                invalid(name, "concurrency", format!("must be 1 to {MAX_CONCURRENCY}, got {}", self.concurrency))
            })?;
        if self.timeout_ms == 0 {
            return Err(invalid(name, "timeout_ms", "must be at least 1"));
        }
        if self.max_retries > MAX_RETRIES {
            return Err(invalid(
                name,
                "max_retries",
                format!("must be at most {MAX_RETRIES}, got {}", self.max_retries),
            ));
        }
        if self.backoff_base_ms == 0 {
            return Err(invalid(name, "backoff_base_ms", "must be at least 1"));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            let message =
                format!("must be at least backoff_base_ms ({}), got {}", self.backoff_base_ms, self.backoff_max_ms);
            return Err(invalid(name, "backoff_max_ms", message));
        }
        if self.breaker.failure_threshold == 0 {
            return Err(invalid(name, "breaker.failure_threshold", "must be at least 1"));
        }
        if self.breaker.open_secs == 0 {
            return Err(invalid(name, "breaker.open_secs", "must be at least 1"));
        }

        let fields = [
            ("fields.status", &self.fields.status),
            ("fields.starts_at", &self.fields.starts_at),
            ("fields.ends_at", &self.fields.ends_at),
            ("fields.details", &self.fields.details),
            ("fields.changed_at", &self.fields.changed_at),
        ];
        for (field, pointer) in fields {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                let message = format!("`{pointer}` is not a JSON pointer (empty, or starting with `/`)");
                return Err(invalid(name, field, message));
            }
        }

        let mut statuses = HashMap::new();
        for (theirs, ours) in &self.statuses {
            let status: ReservationStatus =
                ours.parse().map_err(|err: String| invalid(name, format!("statuses.{theirs}"), err))?;
            statuses.insert(theirs.clone(), status);
        }

        Ok(Checked {
            base_url,
            lookup_path: self.lookup_path.clone(),
            batch_url,
            max_batch: self.max_batch,
            burst,
            concurrency,
            timeout: Duration::from_millis(self.timeout_ms),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            open_for: Duration::from_secs(self.breaker.open_secs),
            headers: self.resolved_headers(env)?,
            statuses,
        })
    }

    /// The headers to send, `env:` values read through `env`; values read
    /// from the environment are marked sensitive (never printed).
    fn resolved_headers(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<HeaderMap, ConfigError> {
        let name = self.name.as_str();
        let mut headers = HeaderMap::new();
        for (header, value) in &self.headers {
            let field = format!("headers.{header}");
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| invalid(name, &field, "is not a valid header name"))?;
            let mut header_value = match value.strip_prefix("env:") {
                Some(var) => {
                    let var = var.trim();
                    if var.is_empty() {
                        return Err(invalid(name, &field, "`env:` must name an environment variable"));
                    }
                    let secret = env(var)
                        .ok_or_else(|| invalid(name, &field, format!("environment variable {var} is not set")))?;
                    let mut header_value = HeaderValue::from_str(&secret).map_err(|_| {
                        invalid(name, &field, format!("environment variable {var} is not a valid header value"))
                    })?;
                    header_value.set_sensitive(true);
                    header_value
                }
                None => {
                    HeaderValue::from_str(value).map_err(|_| invalid(name, &field, "is not a valid header value"))?
                }
            };
            if header_name == reqwest::header::AUTHORIZATION {
                header_value.set_sensitive(true);
            }
            headers.insert(header_name, header_value);
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(value: serde_json::Value) -> Result<AgenciesConfig, ConfigError> {
        let config: AgenciesConfig = serde_path_to_error::deserialize(value)
            .map_err(|err| ConfigError::Parse { path: None, message: err.to_string() })?;
        config.validate_with(&no_env)?;
        Ok(config)
    }

    fn provider(extra: serde_json::Value) -> serde_json::Value {
        let mut provider = json!({"name": "skyways", "base_url": "http://127.0.0.1:9/skyways"});
        if let (Some(map), Some(extra)) = (provider.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        json!({ "providers": [provider] })
    }

    fn error(extra: serde_json::Value) -> String {
        parse(provider(extra)).expect_err("refused").to_string()
    }

    #[test]
    fn defaults_fill_everything_but_name_and_url() {
        let config = from_json(r#"{"providers": [{"name": "skyways", "base_url": "https://api.example/v2/"}]}"#)
            .expect("a config");
        let provider = &config.providers[0];
        assert_eq!(provider, &ProviderConfig::new("skyways", "https://api.example/v2/"));
        assert_eq!(provider.lookup_path, "/reservations/{number}");
        assert_eq!(provider.batch_path, None);
        assert_eq!((provider.max_batch, provider.rate_per_sec, provider.concurrency), (100, 50.0, 8));
        assert_eq!((provider.timeout_ms, provider.max_retries), (5_000, 3));
        assert_eq!((provider.backoff_base_ms, provider.backoff_max_ms), (200, 10_000));
        assert_eq!(provider.breaker, BreakerConfig { failure_threshold: 5, open_secs: 30 });
        assert_eq!(provider.fields.starts_at, "/starts_at");
        assert_eq!(provider.effective_burst(), 50);
        let checked = provider.checked(&no_env).expect("valid");
        assert_eq!(checked.base_url, "https://api.example/v2");
        assert_eq!(checked.burst.get(), 50);
    }

    #[test]
    fn burst_defaults_to_the_rate_rounded_up() {
        let mut provider = ProviderConfig::new("a", "http://x");
        provider.rate_per_sec = 0.2;
        assert_eq!(provider.effective_burst(), 1);
        provider.rate_per_sec = 12.5;
        assert_eq!(provider.effective_burst(), 13);
        provider.burst = Some(3);
        assert_eq!(provider.effective_burst(), 3);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let message = error(json!({"rate": 5}));
        assert!(message.contains("providers[0]") && message.contains("unknown field `rate`"), "{message}");
        let message = error(json!({"breaker": {"threshold": 5}}));
        assert!(message.contains("providers[0].breaker") && message.contains("threshold"), "{message}");
        let message = error(json!({"rate_per_sec": "fast"}));
        assert!(message.contains("providers[0].rate_per_sec"), "{message}");
        let message = from_json(r#"{"providers": [], "extra": 1}"#).expect_err("refused").to_string();
        assert!(message.contains("extra"), "{message}");
    }

    #[test]
    fn bad_values_name_the_provider_and_field() {
        let cases = [
            (json!({"base_url": "not a url"}), "base_url"),
            (json!({"base_url": "ftp://example.com"}), "base_url"),
            (json!({"base_url": "http://example.com/?key=1"}), "base_url"),
            (json!({"lookup_path": "/reservations"}), "lookup_path"),
            (json!({"lookup_path": "reservations/{number}"}), "lookup_path"),
            (json!({"batch_path": "batch"}), "batch_path"),
            (json!({"max_batch": 0}), "max_batch"),
            (json!({"rate_per_sec": 0}), "rate_per_sec"),
            (json!({"rate_per_sec": -3}), "rate_per_sec"),
            (json!({"burst": 0}), "burst"),
            (json!({"concurrency": 0}), "concurrency"),
            (json!({"timeout_ms": 0}), "timeout_ms"),
            (json!({"max_retries": 1000}), "max_retries"),
            (json!({"backoff_base_ms": 500, "backoff_max_ms": 100}), "backoff_max_ms"),
            (json!({"breaker": {"failure_threshold": 0}}), "breaker.failure_threshold"),
            (json!({"breaker": {"open_secs": 0}}), "breaker.open_secs"),
            (json!({"fields": {"status": "status"}}), "fields.status"),
            (json!({"statuses": {"HK": "booked"}}), "statuses.HK"),
            (json!({"headers": {"Bad Header": "x"}}), "headers.Bad Header"),
            (json!({"headers": {"X-Key": "line\nbreak"}}), "headers.X-Key"),
            (json!({"headers": {"X-Key": "env:"}}), "headers.X-Key"),
            (json!({"aliases": [" "]}), "aliases"),
            (json!({"name": ""}), "name"),
        ];
        for (extra, field) in cases {
            let message = error(extra.clone());
            assert!(message.contains(&format!(": {field}: ")), "{extra}: {message}");
            if field != "name" {
                assert!(message.starts_with("agency `skyways`: "), "{extra}: {message}");
            }
        }
        let message = error(json!({"statuses": {"HK": "booked"}}));
        assert!(message.contains("confirmed, cancelled"), "{message}");
    }

    #[test]
    fn env_headers_are_read_and_a_missing_variable_is_named() {
        let config = parse(provider(json!({}))).expect("valid");
        let mut provider = config.providers[0].clone();
        provider.headers.insert("Authorization".into(), "env:SKYWAYS_TOKEN".into());
        provider.headers.insert("X-Client".into(), "longhaul".into());
        let env = |var: &str| (var == "SKYWAYS_TOKEN").then(|| "Bearer s3cret".to_owned());
        let checked = provider.checked(&env).expect("valid");
        let token = checked.headers.get("authorization").expect("the header");
        assert_eq!(token.to_str().ok(), Some("Bearer s3cret"));
        assert!(token.is_sensitive());
        assert!(!format!("{:?}", checked.headers).contains("s3cret"));
        assert_eq!(checked.headers.get("x-client").and_then(|v| v.to_str().ok()), Some("longhaul"));

        let message = provider.checked(&no_env).expect_err("refused").to_string();
        assert_eq!(message, "agency `skyways`: headers.Authorization: environment variable SKYWAYS_TOKEN is not set");
    }

    #[test]
    fn names_and_aliases_route_to_one_provider_only() {
        let config = json!({"providers": [
            {"name": "skyways", "base_url": "http://a", "aliases": ["Sky"]},
            {"name": "grandhotels", "base_url": "http://b", "aliases": ["grand", " SKY "]},
        ]});
        let message = parse(config).expect_err("refused").to_string();
        assert!(
            message.contains("agency `grandhotels`: aliases: ` SKY ` is already routed to agency `skyways`"),
            "{message}"
        );
        let config = json!({"providers": [{"name": "skyways", "base_url": "http://a", "aliases": ["SKYWAYS"]}]});
        assert!(parse(config).is_ok(), "an alias that repeats the name is harmless");
    }

    #[test]
    fn statuses_map_to_ours() {
        let mut provider = ProviderConfig::new("a", "http://x");
        provider.statuses.insert("HK".into(), "confirmed".into());
        provider.statuses.insert("XX".into(), "cancelled".into());
        let checked = provider.checked(&no_env).expect("valid");
        assert_eq!(checked.statuses.get("HK"), Some(&ReservationStatus::Confirmed));
        assert_eq!(checked.statuses.get("XX"), Some(&ReservationStatus::Cancelled));
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("agencies.json");
        std::fs::write(&path, r#"{"providers": [{"name": "a", "base_url": "http://x", "batch_path": "/b"}]}"#)
            .expect("written");
        let config = load(&path).expect("a config");
        assert_eq!(config.providers[0].batch_path.as_deref(), Some("/b"));
        std::fs::write(&path, "{").expect("written");
        let message = load(&path).expect_err("refused").to_string();
        assert!(message.contains("agencies.json"), "{message}");
        let message = load(&dir.path().join("missing.json")).expect_err("refused").to_string();
        assert!(message.contains("missing.json"), "{message}");
    }
}
