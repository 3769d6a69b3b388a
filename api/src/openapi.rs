//! The OpenAPI 3.1 document, generated from the handlers' annotations so that
//! it cannot drift from the code.

use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::{problem::ProblemDocument, routes, sse, views};

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
        routes::health::healthz,
        routes::health::readyz,
        routes::health::openapi_json,
        routes::health::metrics,
    ),
    components(schemas(ProblemDocument, views::JobView, views::JobList, views::Artifact)),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Jobs of the caller (or, for admins, of the tenant)"),
        (name = "travel", description = "Reservations and trips of the caller (or, for admins, of the tenant)"),
        (name = "mail", description = "Inboxes connected for email_poll; credentials are sealed and never returned"),
        (name = "media", description = "Photos for the yearly video: register, upload, list, delete"),
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
