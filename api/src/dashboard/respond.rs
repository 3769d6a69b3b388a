//! Dashboard responses: a page with the headers every page gets, and
//! [`Denied`], why a request was not served, as a page.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};

use super::pages;
use crate::problem::Problem;

/// Why a dashboard request was not served, as a page.
pub(crate) enum Denied {
    /// No session: GETs go to the sign-in page, and come back after.
    SignIn { next: String },
    /// Signed in, or presenting a token, without the admin role; or a POST
    /// that failed its CSRF or origin check.
    Forbidden(String),
    /// A token that does not verify.
    Unauthorized(String),
    /// Anything else, with its status.
    Problem(Problem),
}

impl From<Problem> for Denied {
    fn from(problem: Problem) -> Self {
        Denied::Problem(problem)
    }
}

impl From<longhaul_jobs::StoreError> for Denied {
    fn from(err: longhaul_jobs::StoreError) -> Self {
        Denied::Problem(err.into())
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn { next } => Redirect::to(&format!("/admin/login?next={}", urlencode(&next))).into_response(),
            Denied::Forbidden(message) => html(StatusCode::FORBIDDEN, pages::denied("Not allowed", &message)),
            Denied::Unauthorized(message) => html(StatusCode::UNAUTHORIZED, pages::login("/admin", Some(&message))),
            Denied::Problem(problem) => {
                let status = problem.status_code();
                let detail = problem.document().detail.clone().unwrap_or_else(|| problem.document().title.clone());
                html(status, pages::denied(&problem.document().title, &detail))
            }
        }
    }
}

pub(super) fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A dashboard page, with the headers every page gets: nothing but our own
/// assets may load, no framing, no caching of admin data.
pub(super) fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, axum::response::Html(markup.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn page(markup: maud::Markup) -> Response {
    html(StatusCode::OK, markup)
}
