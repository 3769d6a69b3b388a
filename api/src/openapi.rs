//! The OpenAPI 3.1 document, generated from the handlers' annotations so that
//! it cannot drift from the code.

mod rules;

use rules::Rules;

use axum::http::Method;
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{Operation, ParameterIn},
        response::{Response, ResponseBuilder},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        Content, ContentBuilder, Object, Ref, RefOr, Type,
    },
    Modify, OpenApi,
};

use crate::{limits::write_class, problem::ProblemDocument, routes, sse, views};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "longhaul",
        description = "Long-running jobs for the app: submit, follow, cancel; queues and operations for admins. \
                       Errors are RFC 9457 `application/problem+json`."
    ),
    paths(
        routes::jobs::submit_job,
        routes::jobs::list_jobs,
        routes::jobs::get_job,
        routes::jobs::cancel_job,
        sse::job_events,
        routes::artifacts::download_artifact,
        routes::travel::create_reservation,
        routes::travel::list_reservations,
        routes::travel::get_reservation,
        routes::travel::update_reservation,
        routes::travel::delete_reservation,
        routes::travel::reservation_changes,
        routes::travel::list_trips,
        routes::mail::create_mail_account,
        routes::mail::list_mail_accounts,
        routes::mail::get_mail_account,
        routes::mail::update_mail_account,
        routes::mail::delete_mail_account,
        routes::mail::poll_mail_account,
        routes::media::create_media,
        routes::media::list_media,
        routes::media::get_media,
        routes::media::delete_media,
        routes::media::upload_media,
        routes::me::get_me,
        routes::me::update_me,
        routes::me::register_device,
        routes::me::list_devices,
        routes::me::delete_device,
        routes::me::list_notifications,
        routes::me::read_notification,
        routes::uploads::create_upload,
        routes::uploads::get_upload,
        routes::uploads::upload_file,
        routes::admin::queues,
        routes::admin::sweeps,
        routes::admin::list_jobs,
        routes::admin::pause_lane,
        routes::admin::resume_lane,
        routes::admin::retry_job,
        routes::admin::delete_job,
        routes::admin::redrive_lane,
        routes::admin::audit_log,
        routes::admin::workers,
        routes::events::ingest,
        routes::events::get_catalogue,
        routes::events::put_catalogue,
        routes::events::delete_my_events,
        routes::events::delete_user_events,
        routes::health::healthz,
        routes::health::readyz,
        openapi_json,
        routes::health::metrics,
    ),
    components(schemas(
        ProblemDocument,
        views::JobView,
        views::JobList,
        views::Artifact,
    )),
    modifiers(&BearerAuth, &EdgeResponses, &Rules),
    tags(
        (name = "jobs", description = "Jobs of the caller (or, for admins, of the tenant)"),
        (name = "travel", description = "Reservations and trips of the caller (or, for admins, of the tenant)"),
        (name = "mail", description = "Inboxes connected for email_poll; credentials are sealed and never returned"),
        (name = "media", description = "Photos for the yearly video: register, upload, list, delete"),
        (name = "me", description = "The caller's own profile, push devices and in-app notifications, whatever their role"),
        (name = "imports", description = "Files admins upload for bulk_import jobs: announce, upload, look up; admin or platform role"),
        (name = "events", description = "Analytics events from the apps, and the tenant's event catalogue"),
        (name = "admin", description = "Queues and operations; admin or platform role"),
        (name = "health", description = "Probes and this document; no token needed"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The answers every operation of a kind can give, added from the rules the
/// code applies rather than repeated on each handler, so that the document
/// cannot drift from them. Every error answer is a problem document: a
/// handler names its statuses (`(status = 404)`, with a description where
/// the generic one would not say enough), and each gets the
/// `application/problem+json` body here. Then: 401 on every operation behind a token, and 503
/// with `Retry-After` there too (the database is out of reach for a moment;
/// see `From<StoreError> for Problem`); 400 and 415 on every operation that
/// takes a JSON body (not JSON; not `application/json`), and 400 on every
/// operation with query parameters (one that cannot be read); 429 with
/// `Retry-After` on every rate-limited write (the same
/// [`write_class`] the limiter asks); 408 on every operation that takes a
/// body (see [`crate::server`]).
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::PATCH, &mut item.patch),
                (Method::DELETE, &mut item.delete),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    add_edge_responses(path, &method, operation);
                }
            }
        }
    }
}

fn add_edge_responses(path: &str, method: &Method, operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let (Some(generic), RefOr::T(response)) = (generic_problem(status), response) {
            if response.content.is_empty() {
                response.content.insert("application/problem+json".to_owned(), problem_content());
            }
            if response.description.is_empty() {
                generic.clone_into(&mut response.description);
            }
        }
    }
    if operation.security.as_ref().is_some_and(|security| !security.is_empty()) {
        responses.entry("401".to_owned()).or_insert_with(|| {
            problem_response("No token, or one that is invalid, expired, not yet valid (`nbf`), from another issuer or audience, or naming a reserved tenant", false).into()
        });
        responses.entry("503".to_owned()).or_insert_with(|| {
            problem_response(
                "A dependency (the database, the job queue) is out of reach for a moment; try again after `Retry-After`",
                true,
            )
            .into()
        });
    }
    let json_body = operation.request_body.as_ref().is_some_and(|body| body.content.contains_key("application/json"));
    let query = operation.parameters.as_ref().is_some_and(|parameters| {
        parameters.iter().any(|parameter| matches!(parameter.parameter_in, ParameterIn::Query))
    });
    if json_body || query {
        let what = match (json_body, query) {
            (true, true) => "The body is not JSON, or a query parameter cannot be read",
            (true, false) => "The body is not JSON",
            _ => "A query parameter cannot be read",
        };
        responses.entry("400".to_owned()).or_insert_with(|| problem_response(what, false).into());
    }
    if json_body {
        responses.entry("415".to_owned()).or_insert_with(|| {
            problem_response("The body is not `application/json` (its `Content-Type` says otherwise)", false).into()
        });
    }
    if write_class(method, path).is_some() {
        responses.entry("429".to_owned()).or_insert_with(|| {
            problem_response(
                "Rate limited: too many writes from this user or tenant (limits count per API replica)",
                true,
            )
            .into()
        });
    }
    if operation.request_body.is_some() {
        responses.entry("408".to_owned()).or_insert_with(|| {
            problem_response("The body did not arrive in time; the connection is closed", false).into()
        });
    }
}

/// What an error status means where its handler says no more; `None` for
/// a status that is not an error.
fn generic_problem(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "The request cannot be read",
        "403" => "The caller's role may not do this",
        "404" => "No such resource where the caller may look (another tenant's answers the same)",
        "409" => "The resource is not in a state that allows this",
        "413" => "The body is over the limit",
        "422" => "A field is invalid; `field` names it",
        "503" => "A dependency is out of reach for a moment",
        status if status.starts_with('4') || status.starts_with('5') => "The problem document says what went wrong",
        _ => return None,
    })
}

fn problem_content() -> Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build()
}

fn problem_response(description: &str, retry_after: bool) -> Response {
    let mut response =
        ResponseBuilder::new().description(description).content("application/problem+json", problem_content());
    if retry_after {
        let header = HeaderBuilder::new()
            .schema(Object::with_type(Type::Integer))
            .description(Some("Whole seconds to wait before trying again (at least 1)"))
            .build();
        response = response.header("Retry-After", header);
    }
    response.build()
}

/// The OpenAPI 3.1 document of this API, generated from the handlers.
#[utoipa::path(
    get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json() -> impl axum::response::IntoResponse {
    use axum::{http::header, response::IntoResponse};
    let document = ApiDoc::openapi();
    match document.to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize the OpenAPI document");
            crate::problem::Problem::internal().into_response()
        }
    }
}
