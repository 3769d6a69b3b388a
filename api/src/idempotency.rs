//! Idempotent submission: what makes two requests "the same".
//!
//! Mobile clients retry on flaky networks, so a retried `POST /v1/jobs` with
//! the same `Idempotency-Key` must return the first job, not create a second
//! one. A key reused for a *different* request is a client bug and is refused
//! (409), so the hash covers everything that changes what the job does.

use axum::http::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use longhaul_jobs::JobKind;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::problem::Problem;

/// The request header that carries the key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Keys longer than this are refused, so that the unique index stays small.
const MAX_KEY_LEN: usize = 255;

/// The key of the request, if any. Keys are visible ASCII of at most 255
/// characters (a UUID is what clients are expected to send).
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let invalid =
        || Problem::invalid_field(IDEMPOTENCY_KEY, format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"));
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// A SHA-256 (hex) over what the job does: kind, payload, `run_at` and
/// priority. The payload is canonicalized (object keys sorted, at every depth)
/// so that a client re-serializing the same payload in another key order
/// still matches. An absent priority hashes as 0 because it means 0; an absent
/// `run_at` hashes as absent, because "now" differs between two retries.
pub fn request_hash(kind: JobKind, payload: &Value, run_at: Option<DateTime<Utc>>, priority: i16) -> String {
    let mut canonical = String::new();
    write_canonical(
        &serde_json::json!({
            "kind": kind.as_str(),
            "payload": payload,
            "priority": priority,
            "run_at": run_at.map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }),
        &mut canonical,
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// A SHA-256 (hex) over a whole request body, canonicalized as
/// [`request_hash`]'s payload is: for requests that are all body, such as a
/// batch of events.
pub fn body_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// JSON with sorted object keys and no whitespace, independent of whether
/// serde_json was built with `preserve_order` somewhere in the dependency tree.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(key, _)| *key);
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value =
            serde_json::from_str(r#"{"report":"year_summary","year":2026,"o":{"b":1,"a":2}}"#).expect("json");
        let b: Value =
            serde_json::from_str(r#"{"o":{"a":2,"b":1},"year":2026,"report":"year_summary"}"#).expect("json");
        assert_eq!(request_hash(JobKind::REPORT_BUILD, &a, None, 0), request_hash(JobKind::REPORT_BUILD, &b, None, 0));
    }

    #[test]
    fn every_part_of_the_request_changes_the_hash() {
        let payload = json!({"sleep_ms": 1});
        let base = request_hash(JobKind::NOOP, &payload, None, 0);
        assert_ne!(base, request_hash(JobKind::NOOP, &json!({"sleep_ms": 2}), None, 0));
        assert_ne!(base, request_hash(JobKind::NOOP, &payload, None, 1));
        assert_ne!(base, request_hash(JobKind::NOOP, &payload, Some(Utc::now()), 0));
        assert_ne!(base, request_hash(JobKind::EMAIL_POLL, &payload, None, 0));
    }

    #[test]
    fn keys_must_be_short_visible_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(key_of(&headers).expect("no key is fine"), None);
        headers.insert(IDEMPOTENCY_KEY, "abc-123".parse().expect("header"));
        assert_eq!(key_of(&headers).expect("valid"), Some("abc-123".to_owned()));
        headers.insert(IDEMPOTENCY_KEY, "x".repeat(256).parse().expect("header"));
        assert!(key_of(&headers).is_err());
    }
}
