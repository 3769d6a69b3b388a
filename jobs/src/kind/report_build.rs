//! `report_build`: a report as files. `year_summary` is a user's year;
//! `vendor_analytics` is a month of a whole tenant, per vendor, and only
//! admins may ask for it; so is `funnel`, read from the tenant's data lake.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Kind, PayloadError, Submitter};
use crate::model::Lane;

pub struct ReportBuild;

impl Kind for ReportBuild {
    const NAME: &'static str = "report_build";
    const LANE: Lane = Lane::Reports;
    const TIMEOUT: Duration = Duration::from_secs(15 * 60);
    type Payload = ReportBuildPayload;

    fn check(payload: &ReportBuildPayload) -> Result<(), PayloadError> {
        payload.request().map(drop)
    }

    fn needs_admin(payload: &ReportBuildPayload) -> Option<&'static str> {
        match payload.report {
            Report::VendorAnalytics | Report::Funnel => Some("its report covers the whole tenant"),
            Report::YearSummary => None,
        }
    }

    /// A report without a `locale` is written in the submitter's language
    /// when longhaul has it, else in English (the worker's default).
    fn complete(payload: &mut ReportBuildPayload, submitter: &Submitter) {
        if payload.locale.is_none() {
            payload.locale = submitter.file_locale();
        }
    }
}

/// `report_build`. `year` goes with `year_summary`, `month` with
/// `vendor_analytics`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBuildPayload {
    pub report: Report,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// `YYYY-MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub month: Option<YearMonth>,
    /// The files to build; all three when absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<ReportFormat>>,
    /// `funnel`: the events, in order, a user goes through (2 to 10 names
    /// of the tenant's catalogue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<String>>,
    /// `funnel`: users who did the first step from this time...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// ... until this one (not included), at most 366 days later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// `funnel`: how long after their first step a user's later steps
    /// count, in hours (1 to 720; 24 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_hours: Option<u32>,
    /// The report's language: `en` or `pt-BR` (any region of `en` or `pt`
    /// is taken); the submitter's language when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<ReportLocale>,
}

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    YearSummary,
    VendorAnalytics,
    Funnel,
}

/// A report with what it is of, as the worker builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportRequest {
    YearSummary { year: i32 },
    VendorAnalytics { month: YearMonth },
    Funnel(FunnelRequest),
}

/// A funnel: of the users who did `steps[0]` in `[from, to)`, how many did
/// each later step, in order, within `window_hours` of their first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunnelRequest {
    pub steps: Vec<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub window_hours: u32,
}

/// A funnel's steps, at least and at most.
pub const FUNNEL_STEPS: std::ops::RangeInclusive<usize> = 2..=10;
/// A funnel's window in hours, at least and at most.
pub const FUNNEL_WINDOW_HOURS: std::ops::RangeInclusive<u32> = 1..=720;
/// The longest span a funnel covers, in days.
pub const FUNNEL_MAX_DAYS: i64 = 366;

/// A file a report is built as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportFormat {
    Pdf,
    Csv,
    Json,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 3] = [ReportFormat::Pdf, ReportFormat::Csv, ReportFormat::Json];
}

/// The years a year summary or a yearly video may be of.
pub const PAYLOAD_YEARS: std::ops::RangeInclusive<i32> = 1970..=2100;

fn year_in_range(year: i32) -> Result<i32, PayloadError> {
    if PAYLOAD_YEARS.contains(&year) {
        Ok(year)
    } else {
        Err(PayloadError::new(
            "payload.year",
            format!("must be between {} and {}", PAYLOAD_YEARS.start(), PAYLOAD_YEARS.end()),
        ))
    }
}

impl ReportBuildPayload {
    /// The report and what it is of; the rules that tie `year` and `month`
    /// to `report`.
    pub fn request(&self) -> Result<ReportRequest, PayloadError> {
        match self.report {
            Report::YearSummary => {
                let year = self.year.ok_or_else(|| PayloadError::new("payload.year", "required for year_summary"))?;
                Ok(ReportRequest::YearSummary { year: year_in_range(year)? })
            }
            Report::VendorAnalytics => {
                let month = self
                    .month
                    .clone()
                    .ok_or_else(|| PayloadError::new("payload.month", "required for vendor_analytics"))?;
                Ok(ReportRequest::VendorAnalytics { month })
            }
            Report::Funnel => self.funnel().map(ReportRequest::Funnel),
        }
    }

    fn funnel(&self) -> Result<FunnelRequest, PayloadError> {
        let required = |field: &str| PayloadError::new(format!("payload.{field}"), "required for funnel");
        let steps = self.steps.clone().ok_or_else(|| required("steps"))?;
        if !FUNNEL_STEPS.contains(&steps.len()) {
            return Err(PayloadError::new(
                "payload.steps",
                format!("from {} to {} event names", FUNNEL_STEPS.start(), FUNNEL_STEPS.end()),
            ));
        }
        if let Some(n) = steps.iter().position(|step| !crate::events::catalogue::is_valid_name(step)) {
            return Err(PayloadError::new(
                format!("payload.steps[{n}]"),
                format!("an event name must match {}", crate::events::catalogue::NAME_PATTERN),
            ));
        }
        let (from, to) = (self.from.ok_or_else(|| required("from"))?, self.to.ok_or_else(|| required("to"))?);
        if to <= from || to - from > chrono::Duration::days(FUNNEL_MAX_DAYS) {
            return Err(PayloadError::new(
                "payload.to",
                format!("must be after `from`, and at most {FUNNEL_MAX_DAYS} days after it"),
            ));
        }
        let window_hours = self.window_hours.unwrap_or(24);
        if !FUNNEL_WINDOW_HOURS.contains(&window_hours) {
            return Err(PayloadError::new(
                "payload.window_hours",
                format!("from {} to {}", FUNNEL_WINDOW_HOURS.start(), FUNNEL_WINDOW_HOURS.end()),
            ));
        }
        Ok(FunnelRequest { steps, from, to, window_hours })
    }

    /// The files to build, each once, in a fixed order.
    pub fn formats(&self) -> Vec<ReportFormat> {
        let mut formats =
            self.formats.clone().filter(|formats| !formats.is_empty()).unwrap_or(ReportFormat::ALL.to_vec());
        formats.sort();
        formats.dedup();
        formats
    }

    /// The report's language; English when absent.
    pub fn locale(&self) -> ReportLocale {
        self.locale.unwrap_or(ReportLocale::En)
    }
}

/// A language longhaul writes reports in.
///
/// One parser reads every tag that asks for one (a payload's `locale`, the
/// token's `locale` claim, an `Accept-Language` range): a BCP 47-like tag
/// whose language is `en` or `pt`, with any region or script (`en-GB`,
/// `pt_PT`, `PT-br`). English is `en`, Portuguese is written for Brazil
/// (`pt-BR`), whatever region was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportLocale {
    En,
    PtBr,
}

/// The tags [`ReportLocale::from_tag`] takes, as the API document states it.
pub const LOCALE_PATTERN: &str = "^([Ee][Nn]|[Pp][Tt])([-_][A-Za-z0-9]{1,8})*$";

impl ReportLocale {
    pub fn from_tag(tag: &str) -> Option<ReportLocale> {
        let mut subtags = tag.split(['-', '_']);
        let locale = match subtags.next()?.to_ascii_lowercase().as_str() {
            "en" => ReportLocale::En,
            "pt" => ReportLocale::PtBr,
            _ => return None,
        };
        subtags
            .all(|subtag| (1..=8).contains(&subtag.len()) && subtag.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then_some(locale)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReportLocale::En => "en",
            ReportLocale::PtBr => "pt-BR",
        }
    }
}

impl Serialize for ReportLocale {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReportLocale {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(deserializer)?;
        ReportLocale::from_tag(&tag).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown locale `{tag}`; expected en or pt-BR (or a region of them)"))
        })
    }
}

/// `YYYY-MM`, exactly: the pattern the API document gives `month`.
pub const MONTH_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct YearMonth(String);

impl YearMonth {
    pub fn parse(value: &str) -> Option<YearMonth> {
        let bytes = value.as_bytes();
        let digits =
            bytes.len() == 7 && bytes[4] == b'-' && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit());
        (digits
            && matches!(&value[5..], "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12"))
        .then(|| YearMonth(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        YearMonth::parse(&value).ok_or_else(|| serde::de::Error::custom("must look like 2026-10"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_parser_reads_every_locale_tag() {
        for (tag, want) in [
            ("en", Some(ReportLocale::En)),
            ("en-GB", Some(ReportLocale::En)),
            ("EN_us", Some(ReportLocale::En)),
            ("pt", Some(ReportLocale::PtBr)),
            ("pt-BR", Some(ReportLocale::PtBr)),
            ("pt-PT", Some(ReportLocale::PtBr)),
            ("pt_BR", Some(ReportLocale::PtBr)),
            ("fr", None),
            ("", None),
            ("en-", None),
            ("english", None),
            (" en", None),
            ("pt-toolongsubtag", None),
        ] {
            assert_eq!(ReportLocale::from_tag(tag), want, "{tag:?}");
        }
    }

    #[test]
    fn months_are_strictly_year_dash_month() {
        for good in ["2026-01", "1999-12"] {
            assert!(YearMonth::parse(good).is_some(), "{good}");
        }
        for bad in ["2026-13", "2026-00", "2026-1", "202610", "2026-10-01", "２０２６-10", ""] {
            assert!(YearMonth::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_funnel_needs_its_steps_span_and_window_in_range() {
        let funnel = |extra: serde_json::Value| {
            let mut body = serde_json::json!({"report": "funnel", "steps": ["search", "payment"],
                "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"});
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            serde_json::from_value::<ReportBuildPayload>(body).expect("valid JSON").request().map_err(|e| e.field)
        };
        let Ok(ReportRequest::Funnel(request)) = funnel(serde_json::json!({})) else { panic!("a funnel") };
        assert_eq!(request.window_hours, 24);
        for (extra, field) in [
            (serde_json::json!({"steps": ["search"]}), "payload.steps"),
            (serde_json::json!({"steps": ["search", "Pay"]}), "payload.steps[1]"),
            (serde_json::json!({"to": "2026-10-01T00:00:00Z"}), "payload.to"),
            (serde_json::json!({"to": "2028-01-01T00:00:00Z"}), "payload.to"),
            (serde_json::json!({"window_hours": 0}), "payload.window_hours"),
            (serde_json::json!({"from": null}), "payload.from"),
        ] {
            assert_eq!(funnel(extra.clone()).err().as_deref(), Some(field), "{extra}");
        }
    }

    #[test]
    fn formats_default_to_all_each_once() {
        let payload: ReportBuildPayload = serde_json::from_value(
            serde_json::json!({"report": "year_summary", "year": 2026, "formats": ["json", "pdf", "json"]}),
        )
        .expect("valid");
        assert_eq!(payload.formats(), [ReportFormat::Pdf, ReportFormat::Json]);
        let payload: ReportBuildPayload =
            serde_json::from_value(serde_json::json!({"report": "year_summary", "year": 2026, "formats": []}))
                .expect("valid");
        assert_eq!(payload.formats(), ReportFormat::ALL);
    }
}
