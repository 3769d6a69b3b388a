//! Request extractors whose rejections are [`Problem`]s.
//!
//! axum's own `Json` answers with plain text and one status for several
//! different mistakes. The contract separates them (415, 413, 400, 422 with the
//! field), so the body is read here, step by step.

use axum::{
    extract::{FromRequest, Request},
    http::{header, HeaderMap},
};
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    problem::Problem,
    server::{is_body_timeout, BodyKind},
    AppState,
};

/// A JSON request body, deserialized into `T`.
///
/// In order: a content type other than JSON is a 415; a body over
/// [`crate::ApiConfig::body_limit`] is a 413 (checked on `Content-Length`
/// first, then while reading, so a lying or chunked client cannot get past);
/// a body that does not arrive within its time ([`crate::server`]) is a 408;
/// text that is not JSON is a 400 with serde_json's line and column; JSON that
/// does not fit `T` is a 422 naming the field.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers())?;
        let limit = state.body_limit;
        if declared_length(request.headers()).is_some_and(|length| length > limit) {
            return Err(Problem::payload_too_large(limit));
        }
        let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|err| {
            let over_limit = std::error::Error::source(&err).is_some_and(|source| source.is::<LengthLimitError>());
            if over_limit {
                Problem::payload_too_large(limit)
            } else if is_body_timeout(&err) {
                state.timeouts.body_timed_out(BodyKind::Ordinary)
            } else {
                Problem::bad_request(format!("could not read the request body: {err}"))
            }
        })?;
        // Two passes: syntax first, so that a 400 means "not JSON" and a 422
        // means "JSON, but wrong", each with the message that helps.
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|err| Problem::malformed_json(format!("the body is not valid JSON: {err}")))?;
        // Every body of this API is an object. serde would read a struct
        // from an array of its fields in order, too, which no document says.
        if !value.is_object() {
            return Err(Problem::invalid_field("body", "the body must be a JSON object"));
        }
        let parsed = serde_path_to_error::deserialize(&value).map_err(|err| {
            let field = field_of(&err.path().to_string(), &err.inner().to_string());
            Problem::invalid_field(field, err.inner().to_string())
        })?;
        Ok(JsonBody(parsed))
    }
}

/// Accepts `application/json` and `application/*+json`, with no charset or
/// `charset=utf-8` (JSON is UTF-8 by RFC 8259; another charset is a client bug).
fn check_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Problem::unsupported_media_type("send the body as application/json"));
    };
    let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    let is_json = match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    };
    if !is_json {
        return Err(Problem::unsupported_media_type(format!(
            "content type `{essence}` is not accepted; send application/json"
        )));
    }
    for parameter in parts {
        if let Some((name, charset)) = parameter.split_once('=') {
            let charset = charset.trim().trim_matches('"');
            if name.trim() == "charset" && charset != "utf-8" && charset != "utf8" {
                return Err(Problem::unsupported_media_type(format!(
                    "charset `{charset}` is not accepted; JSON must be UTF-8"
                )));
            }
        }
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The JSON path of a deserialization error, as the `field` of a 422.
///
/// serde reports a missing field at the path of the object that should hold
/// it, naming the field only in the message (``missing field `kind` ``), so
/// that name is appended. An unknown field's path already ends with it.
pub(crate) fn field_of(path: &str, message: &str) -> String {
    let named = |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next());
    let at_root = path == "." || path.is_empty();
    match (named("missing field `"), named("unknown field `")) {
        (Some(name), _) if at_root => name.to_owned(),
        (Some(name), _) => format!("{path}.{name}"),
        (None, Some(name)) if at_root => name.to_owned(),
        _ if at_root => "body".to_owned(),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).expect("a valid header value"));
        headers
    }

    #[test]
    fn json_content_types_are_accepted() {
        for accepted in [
            "application/json",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
            "Application/JSON;charset=UTF-8",
        ] {
            assert!(check_content_type(&with_content_type(accepted)).is_ok(), "{accepted}");
        }
    }

    #[test]
    fn other_content_types_are_refused() {
        for refused in ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "json"] {
            assert!(check_content_type(&with_content_type(refused)).is_err(), "{refused}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn fields_are_named_from_path_or_message() {
        assert_eq!(field_of(".", "missing field `kind`"), "kind");
        assert_eq!(field_of("priorty", "unknown field `priorty`, expected one of `kind`"), "priorty");
        assert_eq!(field_of(".", "unknown field `priorty`, expected one of `kind`"), "priorty");
        assert_eq!(field_of("priority", "invalid type: string \"x\", expected i16"), "priority");
        assert_eq!(field_of("payload", "missing field `year`"), "payload.year");
        assert_eq!(field_of(".", "invalid type: integer `1`, expected struct"), "body");
    }
}
