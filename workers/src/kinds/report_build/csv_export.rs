//! The reports' CSV files.
//!
//! - A year: one row per reservation, oldest first, written page by page to
//!   a temporary file so that memory does not grow with the year. The year
//!   is the user's, in their zone; each time is written as the local time
//!   where it happens, with its offset (the same instant as UTC, and what
//!   the ticket says), and the zones have their own columns.
//! - A month of vendors: one row per vendor and type, as counted.

use longhaul_jobs::{
    model::Scope,
    travel::{year_bounds, ReservationFilter, VendorFigures, Zone},
};
use tempfile::NamedTempFile;

use crate::{JobContext, JobError};

/// Reservations read per query.
const PAGE: u32 = 1_000;

const HEADER: [&str; 15] = [
    "id",
    "type",
    "status",
    "reservation_number",
    "provider",
    "starts_at",
    "ends_at",
    "city",
    "country",
    "origin",
    "destination",
    "trip_id",
    "source",
    "start_zone",
    "end_zone",
];

fn io_error(err: impl std::fmt::Display) -> JobError {
    JobError::retryable(format!("cannot write the CSV report: {err}"))
}

/// Writes the year's reservations of the job's user; returns the file.
pub(super) async fn year_reservations(ctx: &JobContext, year: i32, zone: Zone) -> Result<NamedTempFile, JobError> {
    let (from, before) = year_bounds(year, zone).map_err(|err| JobError::permanent(err.to_string()))?;
    let scope = Scope::User { tenant_id: ctx.job.tenant_id.clone(), user_id: ctx.job.user_id.clone() };
    let file = NamedTempFile::new().map_err(io_error)?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(file.reopen().map_err(io_error)?));
    writer.write_record(HEADER).map_err(io_error)?;
    let mut filter = ReservationFilter {
        starts_from: Some(from),
        starts_before: Some(before),
        oldest_first: true,
        limit: PAGE,
        ..ReservationFilter::default()
    };
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let page = ctx
            .store
            .list_reservations(&scope, &filter)
            .await
            .map_err(|err| JobError::retryable(format!("cannot read the reservations: {err}")))?;
        for r in &page {
            let time = |t: chrono::DateTime<chrono::Utc>, zone: Option<Zone>| match zone {
                Some(zone) => zone.local(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                None => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            let name = |zone: Option<Zone>| zone.map(|z| z.to_string()).unwrap_or_default();
            writer
                .write_record([
                    r.id.to_string(),
                    r.kind.to_string(),
                    r.status.to_string(),
                    r.reservation_number.clone(),
                    r.provider.clone(),
                    time(r.starts_at, r.start_zone),
                    r.ends_at.map(|at| time(at, r.end_zone)).unwrap_or_default(),
                    r.city.clone().unwrap_or_default(),
                    r.country.clone().unwrap_or_default(),
                    r.origin.clone().unwrap_or_default(),
                    r.destination.clone().unwrap_or_default(),
                    r.trip_id.map(|id| id.to_string()).unwrap_or_default(),
                    r.source.to_string(),
                    name(r.start_zone),
                    name(r.end_zone),
                ])
                .map_err(io_error)?;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => filter.after = Some((last.starts_at, last.id)),
            _ => break,
        }
    }
    writer.flush().map_err(io_error)?;
    Ok(file)
}

/// The vendor rows, in their order, with a header.
pub(super) fn vendor_rows(rows: &[VendorFigures]) -> Result<Vec<u8>, JobError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["vendor", "type", "reservations", "cancelled", "changed", "changes"]).map_err(io_error)?;
    for row in rows {
        writer
            .write_record([
                row.vendor.clone(),
                row.kind.to_string(),
                row.reservations.to_string(),
                row.cancelled.to_string(),
                row.changed.to_string(),
                row.changes.to_string(),
            ])
            .map_err(io_error)?;
    }
    writer.into_inner().map_err(io_error)
}

/// A funnel's figures: every step overall (`platform` is `all`), then per
/// platform.
pub(super) fn funnel_rows(funnel: &super::funnel::Funnel) -> Result<Vec<u8>, JobError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "platform",
            "step_index",
            "step",
            "users",
            "conversion_from_previous",
            "conversion_from_start",
            "drop_off",
        ])
        .map_err(io_error)?;
    let groups = std::iter::once(("all", &funnel.overall))
        .chain(funnel.platforms.iter().map(|(platform, figures)| (platform.as_str(), figures)));
    for (platform, figures) in groups {
        for (index, step) in figures.iter().enumerate() {
            writer
                .write_record([
                    platform.to_owned(),
                    index.to_string(),
                    step.step.clone(),
                    step.users.to_string(),
                    format!("{:.4}", step.conversion_from_previous),
                    format!("{:.4}", step.conversion_from_start),
                    step.drop_off.to_string(),
                ])
                .map_err(io_error)?;
        }
    }
    writer.into_inner().map_err(io_error)
}
