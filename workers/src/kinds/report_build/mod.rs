//! `report_build`: reports as artifacts.
//!
//! `year_summary` is a user's year: the figures are counted by the database
//! (`TravelStore::year_summary`), typeset as a PDF (in `en` or `pt-BR`),
//! written as JSON, and every reservation of the year is streamed, page by
//! page, into a CSV file that is then uploaded (multipart on S3). All three
//! are byte-for-byte the same for the same data: no timestamps of the run, a
//! fixed order.
//!
//! `vendor_analytics` is a month of the job's tenant, per vendor (admins
//! only; the API refuses it to users): the database counts the month's
//! reservations, cancellations and the vendors' changes from the
//! reservations' history (`TravelStore::vendor_analytics`), and the rows are
//! written as a PDF, a JSON and a CSV, one row per vendor and type.
//!
//! `funnel` (admins only) reads the tenant's data lake (see `funnel.rs`):
//! users at each step, conversion and drop-off between steps, overall and
//! per platform, as a PDF with the funnel's bars, a JSON and a CSV.

mod csv_export;
pub(crate) mod funnel;
pub(crate) mod locale;
mod pdf;

use locale::Locale;

use async_trait::async_trait;
use longhaul_jobs::{
    kind::{self, ReportBuildPayload, ReportFormat, ReportRequest},
    travel::Zone,
};
use serde_json::json;

use crate::{Handler, JobContext, JobError, JobResult};

pub struct ReportBuild;

#[async_trait]
impl Handler for ReportBuild {
    type Kind = kind::ReportBuild;

    async fn run(&self, ctx: &JobContext, payload: ReportBuildPayload) -> JobResult {
        let request = payload.request().map_err(|err| JobError::permanent(err.to_string()))?;
        // The payload's language (the submitter's, when they left it out),
        // else the owner's profile's; the year is the owner's, in their zone.
        let profile = ctx.owner_profile().await?;
        let locale = Locale::from(payload.locale.or_else(|| profile.report_locale()).unwrap_or(kind::ReportLocale::En));
        let formats = payload.formats();
        match request {
            ReportRequest::YearSummary { year } => {
                year_summary(ctx, year, Zone::Named(profile.zone()), &formats, locale).await
            }
            ReportRequest::VendorAnalytics { month } => vendor_analytics(ctx, month.as_str(), &formats, locale).await,
            ReportRequest::Funnel(request) => funnel_report(ctx, &request, &formats, locale).await,
        }
    }
}

async fn year_summary(ctx: &JobContext, year: i32, zone: Zone, formats: &[ReportFormat], locale: Locale) -> JobResult {
    let (tenant, user) = (&ctx.job.tenant_id, &ctx.job.user_id);
    let summary = ctx
        .store
        .year_summary(tenant, user, year, zone)
        .await
        .map_err(|err| JobError::retryable(format!("cannot count the year: {err}")))?;
    ctx.set_progress(20).await;
    let mut artifacts = Vec::new();
    if formats.contains(&ReportFormat::Pdf) {
        let bytes = pdf::year_summary(&summary, user, locale)
            .map_err(|err| JobError::permanent(format!("cannot typeset the PDF report: {err}")))?;
        let name = format!("year-summary-{year}.pdf");
        ctx.put_artifact_bytes(&name, "application/pdf", bytes.into()).await?;
        artifacts.push(name);
    }
    if formats.contains(&ReportFormat::Json) {
        let document = json!({
            "report": "year_summary",
            "year": year,
            "empty": summary.is_empty(),
            "message": summary.is_empty().then(|| format!("No reservations in {year}.")),
            "summary": summary,
        });
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|err| JobError::permanent(format!("cannot write the JSON report: {err}")))?;
        let name = format!("year-summary-{year}.json");
        ctx.put_artifact_bytes(&name, "application/json", bytes.into()).await?;
        artifacts.push(name);
    }
    ctx.set_progress(40).await;
    if formats.contains(&ReportFormat::Csv) {
        let name = format!("year-summary-{year}.csv");
        let file = csv_export::year_reservations(ctx, year, zone).await?;
        ctx.put_artifact_file(&name, "text/csv; charset=utf-8", file.path()).await?;
        artifacts.push(name);
    }
    Ok(Some(json!({
        "report": "year_summary",
        "year": year,
        "reservations": summary.reservations,
        "trips": summary.trips,
        "files": artifacts,
    })))
}

async fn vendor_analytics(ctx: &JobContext, month: &str, formats: &[ReportFormat], locale: Locale) -> JobResult {
    let tenant = &ctx.job.tenant_id;
    let analytics = ctx
        .store
        .vendor_analytics(tenant, month)
        .await
        .map_err(|err| JobError::retryable(format!("cannot count the month: {err}")))?;
    ctx.set_progress(50).await;
    let mut artifacts = Vec::new();
    if formats.contains(&ReportFormat::Pdf) {
        let bytes = pdf::vendor_analytics(&analytics, tenant, locale)
            .map_err(|err| JobError::permanent(format!("cannot typeset the PDF report: {err}")))?;
        let name = format!("vendor-analytics-{month}.pdf");
        ctx.put_artifact_bytes(&name, "application/pdf", bytes.into()).await?;
        artifacts.push(name);
    }
    if formats.contains(&ReportFormat::Json) {
        let document = json!({
            "report": "vendor_analytics",
            "month": month,
            "tenant_id": tenant,
            "empty": analytics.is_empty(),
            "message": analytics.is_empty().then(|| format!("No reservations in {month}.")),
            "analytics": analytics,
        });
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|err| JobError::permanent(format!("cannot write the JSON report: {err}")))?;
        let name = format!("vendor-analytics-{month}.json");
        ctx.put_artifact_bytes(&name, "application/json", bytes.into()).await?;
        artifacts.push(name);
    }
    if formats.contains(&ReportFormat::Csv) {
        let bytes = csv_export::vendor_rows(&analytics.rows)?;
        let name = format!("vendor-analytics-{month}.csv");
        ctx.put_artifact_bytes(&name, "text/csv; charset=utf-8", bytes.into()).await?;
        artifacts.push(name);
    }
    Ok(Some(json!({
        "report": "vendor_analytics",
        "month": month,
        "vendors": analytics.vendors,
        "reservations": analytics.reservations,
        "cancelled": analytics.cancelled,
        "changes": analytics.changes,
        "files": artifacts,
    })))
}

async fn funnel_report(
    ctx: &JobContext,
    request: &kind::FunnelRequest,
    formats: &[ReportFormat],
    locale: Locale,
) -> JobResult {
    let funnel = funnel::build(ctx, request).await?;
    let stem = format!("funnel-{}-{}", request.from.format("%Y%m%d"), request.to.format("%Y%m%d"));
    let mut artifacts = Vec::new();
    if formats.contains(&ReportFormat::Pdf) {
        let bytes = pdf::funnel(&funnel, &ctx.job.tenant_id, locale)
            .map_err(|err| JobError::permanent(format!("cannot typeset the PDF report: {err}")))?;
        ctx.put_artifact_bytes(&format!("{stem}.pdf"), "application/pdf", bytes.into()).await?;
        artifacts.push(format!("{stem}.pdf"));
    }
    if formats.contains(&ReportFormat::Json) {
        let document = json!({ "report": "funnel", "tenant_id": ctx.job.tenant_id, "funnel": funnel });
        let bytes = serde_json::to_vec_pretty(&document)
            .map_err(|err| JobError::permanent(format!("cannot write the JSON report: {err}")))?;
        ctx.put_artifact_bytes(&format!("{stem}.json"), "application/json", bytes.into()).await?;
        artifacts.push(format!("{stem}.json"));
    }
    if formats.contains(&ReportFormat::Csv) {
        let bytes = csv_export::funnel_rows(&funnel)?;
        ctx.put_artifact_bytes(&format!("{stem}.csv"), "text/csv; charset=utf-8", bytes.into()).await?;
        artifacts.push(format!("{stem}.csv"));
    }
    Ok(Some(json!({
        "report": "funnel",
        "steps": funnel.request.steps,
        "users": funnel.overall.iter().map(|step| step.users).collect::<Vec<_>>(),
        "partitions_read": funnel.partitions_read,
        "events_read": funnel.events_read,
        "files": artifacts,
    })))
}
