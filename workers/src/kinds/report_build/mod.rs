//! `report_build`: reports as artifacts.
//!
//! `year_summary` is a user's year: the figures are counted by the database
//! (`TravelStore::year_summary`), typeset as a PDF (in `en` or `pt-BR`),
//! written as JSON, and every reservation of the year is streamed, page by
//! page, into a CSV file that is then uploaded (multipart on S3). All three
//! are byte-for-byte the same for the same data: no timestamps of the run, a
//! fixed order.
//!
//! Not in this version, and said so rather than faked: the
//! `vendor_analytics` report.

mod csv_export;
mod locale;
mod pdf;

use locale::Locale;

use async_trait::async_trait;
use longhaul_jobs::{model::ReportBuildPayload, JobKind};
use serde_json::json;

use super::{Handler, JobError, JobResult};
use crate::runtime::JobContext;

pub struct ReportBuild;

const FORMATS: [&str; 3] = ["pdf", "csv", "json"];

#[async_trait]
impl Handler for ReportBuild {
    fn kind(&self) -> JobKind {
        JobKind::ReportBuild
    }

    async fn run(&self, ctx: &JobContext) -> JobResult {
        let payload: ReportBuildPayload = ctx.payload()?;
        let formats: Vec<String> = match &payload.formats {
            Some(formats) if !formats.is_empty() => formats.clone(),
            _ => FORMATS.iter().map(|f| (*f).to_owned()).collect(),
        };
        match payload.report.as_str() {
            "year_summary" => {
                let year = payload.year.ok_or_else(|| JobError::permanent("year_summary needs a year"))?;
                let locale = Locale::parse(payload.locale.as_deref()).map_err(JobError::permanent)?;
                year_summary(ctx, year, &formats, locale).await
            }
            "vendor_analytics" => {
                Err(JobError::permanent("the vendor_analytics report is not available in this version of longhaul"))
            }
            other => Err(JobError::permanent(format!("unknown report `{other}`"))),
        }
    }
}

async fn year_summary(ctx: &JobContext, year: i32, formats: &[String], locale: Locale) -> JobResult {
    let (tenant, user) = (&ctx.job.tenant_id, &ctx.job.user_id);
    let summary = ctx
        .store
        .year_summary(tenant, user, year)
        .await
        .map_err(|err| JobError::retryable(format!("cannot count the year: {err}")))?;
    ctx.set_progress(20).await;
    let mut artifacts = Vec::new();
    if formats.iter().any(|f| f == "pdf") {
        let bytes = pdf::year_summary(&summary, user, locale)
            .map_err(|err| JobError::permanent(format!("cannot typeset the PDF report: {err}")))?;
        let name = format!("year-summary-{year}.pdf");
        ctx.put_artifact_bytes(&name, "application/pdf", bytes.into()).await?;
        artifacts.push(name);
    }
    if formats.iter().any(|f| f == "json") {
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
    if formats.iter().any(|f| f == "csv") {
        let name = format!("year-summary-{year}.csv");
        let file = csv_export::year_reservations(ctx, year).await?;
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
