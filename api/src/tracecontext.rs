//! W3C Trace Context: the `traceparent` a job carries from the API request,
//! through its queue message, into the worker's span.

use axum::http::HeaderMap;

/// The `traceparent` to store with a job created by this request: the
/// caller's, if it is well-formed, so the job joins the caller's trace;
/// otherwise a fresh one, so every job is still traceable end to end.
///
/// The request's span records the trace id (its `trace_id` field), so the
/// API's log lines join the worker's, which carry the same field.
pub fn traceparent_for(headers: &HeaderMap) -> String {
    let traceparent = incoming(headers).map(str::to_owned).unwrap_or_else(generate);
    if let Some(trace_id) = trace_id(&traceparent) {
        tracing::Span::current().record("trace_id", trace_id);
    }
    traceparent
}

/// The caller's `traceparent`, if it is well-formed.
pub fn incoming(headers: &HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|value| value.to_str().ok()).map(str::trim).filter(|value| is_valid(value))
}

pub use longhaul_jobs::model::trace_id;

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, with neither id
/// all zeros (the spec makes those invalid). Future versions may append
/// fields, which the spec says to accept as long as the version is not `ff`.
fn is_valid(value: &str) -> bool {
    let fields: Vec<&str> = value.split('-').collect();
    let [version, trace_id, parent_id, flags, rest @ ..] = fields.as_slice() else {
        return false;
    };
    let is_hex = |field: &str, len: usize| {
        field.len() == len && field.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    };
    let all_zero = |field: &str| field.bytes().all(|byte| byte == b'0');
    is_hex(version, 2)
        && *version != "ff"
        && (*version != "00" || rest.is_empty())
        && is_hex(trace_id, 32)
        && !all_zero(trace_id)
        && is_hex(parent_id, 16)
        && !all_zero(parent_id)
        && is_hex(flags, 2)
}

/// A new sampled root context.
fn generate() -> String {
    let trace_id: [u8; 16] = rand::random();
    let parent_id: [u8; 8] = rand::random();
    format!("00-{}-{}-01", hex::encode(trace_id), hex::encode(parent_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_valid_traceparent_is_kept() {
        let mut headers = HeaderMap::new();
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent", HeaderValue::from_static(value));
        assert_eq!(traceparent_for(&headers), value);
    }

    #[test]
    fn a_missing_or_invalid_traceparent_is_replaced_by_a_valid_one() {
        let generated = traceparent_for(&HeaderMap::new());
        assert!(is_valid(&generated), "{generated}");
        let mut headers = HeaderMap::new();
        headers
            .insert("traceparent", HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
        assert_ne!(traceparent_for(&headers), "00-00000000000000000000000000000000-00f067aa0ba902b7-01");
        assert!(!is_valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
        assert!(!is_valid("garbage"));
    }
}
