//! The dashboard's pages, as maud templates. Values are escaped by maud;
//! the only raw output is JSON for the charts, with `</` escaped so that it
//! cannot close its script element.

use chrono::{DateTime, Utc};
use longhaul_jobs::{
    admin::{LaneMinute, WorkerPresence},
    store::LaneStats,
    travel::refresh::Staleness,
    JobKind, Lane, Status,
};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    auth::Principal,
    routes::admin::{AuditView, SweepItem},
    views::JobView,
};

/// Who is looking, and the token their forms carry.
pub(crate) struct Viewer<'a> {
    pub principal: &'a Principal,
    pub csrf: &'a str,
}

/// The job list's filters, as given.
pub(crate) struct JobsForm<'a> {
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub lane: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

/// What the job page shows beyond the public view.
pub(crate) struct JobExtra<'a> {
    pub errors: &'a Value,
    pub traceparent: Option<&'a str>,
    pub locked_by: Option<&'a str>,
}

const NAV: [(&str, &str, &str); 7] = [
    ("overview", "/admin", "Overview"),
    ("jobs", "/admin/jobs", "Jobs"),
    ("dead", "/admin/dead", "Dead jobs"),
    ("scheduled", "/admin/scheduled", "Scheduled"),
    ("sweeps", "/admin/sweeps", "Sweeps"),
    ("workers", "/admin/workers", "Workers"),
    ("audit", "/admin/audit", "Audit log"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · longhaul" }
            link rel="stylesheet" href="/admin/assets/admin.css";
            script src="/admin/assets/admin.js" defer {}
        }
    }
}

fn csrf_field(viewer: &Viewer<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

fn layout(viewer: &Viewer<'_>, title: &str, active: &str, notice: Option<&str>, body: Markup) -> Markup {
    let principal = viewer.principal;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-page=(active) {
                header.top {
                    a.brand href="/admin" { "longhaul" }
                    nav {
                        @for (key, href, label) in NAV {
                            a href=(href) class=[(key == active).then_some("active")] { (label) }
                        }
                    }
                    div.who {
                        span #who { (principal.user_id) " · " (principal.tenant_id) " · " (principal.role.as_str()) }
                        form method="post" action="/admin/logout" {
                            (csrf_field(viewer))
                            button.link type="submit" #logout { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(notice) = notice {
                        p.notice #notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page.
pub(crate) fn login(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.login {
                main.narrow {
                    h1 { "longhaul admin" }
                    @if let Some(error) = error {
                        p.error #login-error role="alert" { (error) }
                    }
                    form method="post" action="/admin/login" #login {
                        input type="hidden" name="next" value=(next);
                        label for="token" { "Admin token" }
                        textarea #token name="token" rows="5" required autocomplete="off" spellcheck="false" {}
                        p.hint { "A JWT with the admin or platform role. It is checked once and becomes a session \
                                  cookie for 8 hours; the token itself is not kept." }
                        button type="submit" #sign-in { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A refusal or an error, as a page.
pub(crate) fn denied(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.login {
                main.narrow {
                    h1 #denied { (title) }
                    p.error role="alert" { (message) }
                    p { a href="/admin/login" { "Sign in with another token" } " · " a href="/admin" { "Back to the dashboard" } }
                }
            }
        }
    }
}

fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S")) } }
}

fn opt_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "–" } },
    }
}

/// Seconds as the largest two units: `3 h 12 min`, `45 s`.
fn age(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else if seconds < 3600.0 {
        format!("{} min {} s", (seconds / 60.0) as u64, (seconds % 60.0) as u64)
    } else if seconds < 86_400.0 {
        format!("{} h {} min", (seconds / 3600.0) as u64, ((seconds % 3600.0) / 60.0) as u64)
    } else {
        format!("{} d {} h", (seconds / 86_400.0) as u64, ((seconds % 86_400.0) / 3600.0) as u64)
    }
}

fn status_badge(status: Status) -> Markup {
    html! { span class={"badge " (status.as_str())} data-status=(status.as_str()) { (status.as_str()) } }
}

/// JSON for a script element of type `application/json`.
fn json_data(id: &str, value: &impl serde::Serialize) -> Markup {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()).replace("</", "<\\/");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

fn lane_row(viewer: &Viewer<'_>, lane: &LaneStats) -> Markup {
    let name = lane.lane.as_str();
    // Figures with `tenant_paused` are a tenant's, whose buttons pause and
    // resume the tenant's own jobs; the platform's pause the whole lane.
    let mine_paused = lane.tenant_paused == Some(true);
    let paused = match lane.tenant_paused {
        Some(tenant_paused) => tenant_paused,
        None => lane.paused,
    };
    html! {
        tr data-lane=(name) {
            th { (name) }
            td data-field="depth" { (lane.depth) }
            td data-field="in_flight" { (lane.in_flight) }
            td data-field="delayed" { (lane.delayed) }
            td data-field="dead" { @if lane.dead > 0 { a href={"/admin/dead?lane=" (name)} { (lane.dead) } } @else { "0" } }
            td data-field="oldest_age_seconds" { (age(lane.oldest_age_seconds)) }
            td data-field="throughput_5m" { (lane.throughput_5m) }
            td data-field="paused" {
                @if lane.paused {
                    span.badge.paused title="Paused for every tenant by the platform" { "paused" }
                } @else if mine_paused {
                    span.badge.paused title="Your tenant's jobs in this lane are paused" { "paused (tenant)" }
                } @else {
                    span.badge.running { "running" }
                }
            }
            td.actions {
                form method="post" action={"/admin/lanes/" (name) "/" (if paused { "resume" } else { "pause" })} {
                    (csrf_field(viewer))
                    @if paused {
                        button type="submit" id={"resume-" (name)} { "Resume" }
                    } @else {
                        button type="submit" id={"pause-" (name)} { "Pause" }
                    }
                }
                form method="post" action={"/admin/lanes/" (name) "/redrive"} {
                    (csrf_field(viewer))
                    button type="submit" id={"redrive-" (name)} disabled[lane.dead == 0] { "Redrive dead" }
                }
            }
        }
    }
}

/// The overview: every lane's figures, live, and charts.
pub(crate) fn overview(
    viewer: &Viewer<'_>,
    notice: Option<&str>,
    lanes: &[LaneStats],
    history: &[LaneMinute],
) -> Markup {
    let body = html! {
        table.grid #lanes {
            thead { tr {
                th { "Lane" } th { "Waiting" } th { "In flight" } th { "Delayed" } th { "Dead" }
                th { "Oldest waiting" } th { "Finished (5 min)" } th { "State" } th {}
            } }
            tbody { @for lane in lanes { (lane_row(viewer, lane)) } }
        }
        p.hint #live-state { "Figures update every 2 seconds while this page is open." }
        div.charts {
            figure {
                figcaption { "Jobs finished per minute, last hour" }
                (minute_chart(history, |minute| minute.finished, "chart-finished"))
            }
            figure {
                figcaption { "Jobs that ended dead per minute, last hour" }
                (minute_chart(history, |minute| minute.failed, "chart-failed"))
            }
            figure {
                figcaption { "Waiting jobs (live)" }
                svg.chart #chart-depth viewBox="0 0 600 200" role="img" aria-label="waiting jobs per lane" {}
            }
            figure {
                figcaption { "Oldest waiting job, seconds (live)" }
                svg.chart #chart-oldest viewBox="0 0 600 200" role="img" aria-label="oldest waiting job per lane" {}
            }
        }
        (legend())
        (json_data("initial-lanes", &lanes))
        (json_data("initial-history", &history))
    };
    layout(viewer, "Overview", "overview", notice, body)
}

fn legend() -> Markup {
    html! {
        ul.legend {
            @for lane in Lane::ALL { li { span class={"swatch lane-" (lane.as_str())} {} (lane.as_str()) } }
        }
    }
}

/// Chart geometry: the viewBox is 600×200 with room for the axis labels.
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 200.0;
const PAD_L: f64 = 44.0;
const PAD_B: f64 = 20.0;
const PAD_T: f64 = 8.0;

/// Lines on shared axes, as SVG. Each series is its CSS class and its
/// points; x and y are scaled to fit.
fn line_chart(id: &str, series: &[(String, Vec<(f64, f64)>)], x_labels: (&str, &str)) -> Markup {
    let points = series.iter().flat_map(|(_, points)| points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0_f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let empty = x_min > x_max;
    let y_max = if y_max <= 0.0 { 1.0 } else { y_max };
    let span = if x_max > x_min { x_max - x_min } else { 1.0 };
    let scale = |x: f64, y: f64| {
        (PAD_L + (x - x_min) / span * (CHART_W - PAD_L - 4.0), CHART_H - PAD_B - y / y_max * (CHART_H - PAD_B - PAD_T))
    };
    html! {
        svg.chart id=(id) viewBox="0 0 600 200" role="img" {
            line.axis x1=(PAD_L) y1=(CHART_H - PAD_B) x2=(CHART_W) y2=(CHART_H - PAD_B) {}
            line.axis x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(CHART_H - PAD_B) {}
            text.tick x=(PAD_L - 4.0) y=(PAD_T + 8.0) text-anchor="end" { (format_number(y_max)) }
            text.tick x=(PAD_L - 4.0) y=(CHART_H - PAD_B) text-anchor="end" { "0" }
            text.tick x=(PAD_L) y=(CHART_H - 4.0) { (x_labels.0) }
            text.tick x=(CHART_W - 4.0) y=(CHART_H - 4.0) text-anchor="end" { (x_labels.1) }
            @if empty {
                text.empty x=(CHART_W / 2.0) y=(CHART_H / 2.0) text-anchor="middle" { "no data yet" }
            }
            @for (class, points) in series {
                @if !points.is_empty() {
                    polyline class={"series " (class)} points=(
                        points.iter().map(|&(x, y)| { let (x, y) = scale(x, y); format!("{x:.1},{y:.1}") })
                            .collect::<Vec<_>>().join(" ")
                    ) {}
                }
            }
        }
    }
}

fn format_number(value: f64) -> String {
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Per-lane lines over the last hour's minutes, with minutes that finished
/// nothing drawn at zero.
fn minute_chart(history: &[LaneMinute], value: impl Fn(&LaneMinute) -> i64, id: &str) -> Markup {
    let now = Utc::now().timestamp() / 60;
    let series: Vec<(String, Vec<(f64, f64)>)> = Lane::ALL
        .iter()
        .map(|lane| {
            let mut per_minute = vec![0i64; 60];
            for minute in history.iter().filter(|minute| minute.lane == *lane) {
                let ago = now - minute.minute.timestamp() / 60;
                if (0..60).contains(&ago) {
                    per_minute[59 - ago as usize] += value(minute);
                }
            }
            let points = per_minute.iter().enumerate().map(|(i, &count)| (i as f64, count as f64)).collect();
            (format!("lane-{}", lane.as_str()), points)
        })
        .collect();
    line_chart(id, &series, ("-60 min", "now"))
}

fn job_rows(jobs: &[JobView], selectable: Option<&Viewer<'_>>) -> Markup {
    html! {
        @for job in jobs {
            tr data-job=(job.id) {
                @if selectable.is_some() {
                    td { input type="checkbox" name="ids" value=(job.id) aria-label={"select " (job.id)}; }
                }
                td.mono { a href={"/admin/jobs/" (job.id)} { (job.id) } }
                td { (job.kind.as_str()) }
                td { (job.lane.as_str()) }
                td { (job.tenant_id) " / " (job.user_id) }
                td { (status_badge(job.status)) }
                td { (job.attempts) "/" (job.max_attempts) }
                td { (time(job.created_at)) }
                td { @if job.status == Status::Queued { (time(job.run_at)) } @else { (opt_time(job.finished_at)) } }
                td.error-text { (job.error.as_deref().unwrap_or("")) }
                @if selectable.is_some() {
                    td.actions {
                        button type="submit" formaction={"/admin/jobs/" (job.id) "/retry"} id={"retry-" (job.id)} { "Retry" }
                        button.danger type="submit" formaction={"/admin/jobs/" (job.id) "/delete"} id={"delete-" (job.id)} { "Delete" }
                    }
                }
            }
        }
    }
}

fn job_table(jobs: &[JobView], selectable: Option<&Viewer<'_>>, due_label: &str) -> Markup {
    html! {
        table.grid #jobs {
            thead { tr {
                @if selectable.is_some() { th { input type="checkbox" #select-all aria-label="select all"; } }
                th { "Job" } th { "Kind" } th { "Lane" } th { "Tenant / user" } th { "Status" } th { "Attempts" }
                th { "Created" } th { (due_label) } th { "Error" }
                @if selectable.is_some() { th {} }
            } }
            tbody { (job_rows(jobs, selectable)) }
        }
        @if jobs.is_empty() { p.muted #no-jobs { "No jobs match." } }
    }
}

fn option(value: &str, current: Option<&str>) -> Markup {
    html! { option value=(value) selected[current == Some(value)] { (value) } }
}

fn filters(viewer: &Viewer<'_>, form: &JobsForm<'_>, action: &str, with_status: bool) -> Markup {
    html! {
        form.filters method="get" action=(action) #filters {
            @if with_status {
                label { "Status " select name="status" #filter-status {
                    option value="" { "any" }
                    @for status in Status::ALL { (option(status.as_str(), form.status)) }
                } }
            }
            label { "Kind " select name="kind" #filter-kind {
                option value="" { "any" }
                @for kind in JobKind::all() { (option(kind.as_str(), form.kind)) }
            } }
            label { "Lane " select name="lane" #filter-lane {
                option value="" { "any" }
                @for lane in Lane::ALL { (option(lane.as_str(), form.lane)) }
            } }
            @if viewer.principal.role == crate::auth::Role::Platform {
                label { "Tenant " input type="text" name="tenant" value=(form.tenant.unwrap_or("")) #filter-tenant; }
            }
            button type="submit" { "Filter" }
        }
    }
}

fn next_link(path: &str, form: &JobsForm<'_>, next: Option<Uuid>) -> Markup {
    let Some(next) = next else { return html! {} };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in [("status", form.status), ("kind", form.kind), ("lane", form.lane), ("tenant", form.tenant)] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("before", &next.to_string());
    html! { p { a #next-page href={(path) "?" (query.finish())} { "Older →" } } }
}

/// The job list, filtered.
pub(crate) fn jobs(viewer: &Viewer<'_>, form: &JobsForm<'_>, jobs: &[JobView], next: Option<Uuid>) -> Markup {
    let body = html! {
        (filters(viewer, form, "/admin/jobs", true))
        (job_table(jobs, None, "Due / finished"))
        (next_link("/admin/jobs", form, next))
    };
    layout(viewer, "Jobs", "jobs", None, body)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// One job: its facts, payload, result, error, attempts and timeline, with
/// the actions its status allows. While it is queued or running the page
/// reloads itself every 2 seconds.
pub(crate) fn job(viewer: &Viewer<'_>, notice: Option<&str>, job: &JobView, extra: &JobExtra<'_>) -> Markup {
    let live = matches!(job.status, Status::Queued | Status::Running);
    let attempts: Vec<&Value> = extra.errors.as_array().map(|errors| errors.iter().collect()).unwrap_or_default();
    let mut timeline: Vec<(DateTime<Utc>, String)> = vec![(job.created_at, "created".to_owned())];
    for attempt in &attempts {
        if let Some(at) = attempt.get("at").and_then(Value::as_str).and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        {
            let number = attempt.get("attempt").and_then(Value::as_i64).unwrap_or_default();
            timeline.push((at.with_timezone(&Utc), format!("attempt {number} failed")));
        }
    }
    if let Some(started) = job.started_at {
        timeline.push((started, "last attempt started".to_owned()));
    }
    if let Some(at) = job.cancel_requested_at {
        timeline.push((at, "cancel requested".to_owned()));
    }
    match job.finished_at {
        Some(finished) => timeline.push((finished, format!("ended {}", job.status))),
        None if job.status == Status::Queued => timeline.push((job.run_at, "due".to_owned())),
        None => {}
    }
    timeline.sort_by_key(|(at, _)| *at);
    let retryable = matches!(job.status, Status::Dead | Status::Failed | Status::Cancelled);
    let body = html! {
        @if live { meta http-equiv="refresh" content="2"; }
        div.job-head {
            (status_badge(job.status))
            span #job-progress { (job.progress) "%" }
            div.actions {
                @if retryable {
                    form method="post" action={"/admin/jobs/" (job.id) "/retry"} {
                        (csrf_field(viewer))
                        button type="submit" #retry { "Retry" }
                    }
                    form method="post" action={"/admin/jobs/" (job.id) "/delete"} {
                        (csrf_field(viewer))
                        button.danger type="submit" #delete { "Delete" }
                    }
                }
                @if live {
                    form method="post" action={"/admin/jobs/" (job.id) "/cancel"} {
                        (csrf_field(viewer))
                        button.danger type="submit" #cancel { "Cancel" }
                    }
                }
            }
        }
        dl.facts {
            dt { "Id" } dd.mono #job-id { (job.id) }
            dt { "Kind" } dd { (job.kind.as_str()) }
            dt { "Lane" } dd { (job.lane.as_str()) }
            dt { "Tenant / user" } dd { (job.tenant_id) " / " (job.user_id) }
            dt { "Attempts" } dd #job-attempts { (job.attempts) " of " (job.max_attempts) }
            dt { "Priority" } dd { (job.priority) }
            dt { "Created" } dd { (time(job.created_at)) }
            dt { "Due" } dd { (time(job.run_at)) }
            dt { "Started" } dd { (opt_time(job.started_at)) }
            dt { "Finished" } dd { (opt_time(job.finished_at)) }
            @if let Some(worker) = extra.locked_by { dt { "Worker" } dd.mono { (worker) } }
            @if let Some(trace) = extra.traceparent { dt { "traceparent" } dd.mono { (trace) } }
            @if let Some(key) = &job.idempotency_key { dt { "Idempotency key" } dd.mono { (key) } }
        }
        @if let Some(error) = &job.error {
            h2 { "Error" }
            pre.error #job-error { (error) }
        }
        h2 { "Payload" }
        pre #job-payload { (pretty(&job.payload)) }
        @if let Some(result) = &job.result {
            h2 { "Result" }
            pre #job-result { (pretty(result)) }
        }
        @if !job.artifacts.is_empty() {
            h2 { "Artifacts" }
            ul #job-artifacts {
                @for artifact in &job.artifacts {
                    li { a href={"/admin/artifacts/" (artifact.id)} { (artifact.name) } " · " (artifact.content_type) " · " (artifact.size_bytes) " bytes" }
                }
            }
        }
        h2 { "Failed attempts" }
        @if attempts.is_empty() {
            p.muted #no-attempts { "None." }
        } @else {
            table.grid #job-attempt-history {
                thead { tr { th { "Attempt" } th { "At" } th { "Error" } } }
                tbody {
                    @for attempt in &attempts {
                        tr {
                            td { (attempt.get("attempt").and_then(Value::as_i64).unwrap_or_default()) }
                            td { (attempt.get("at").and_then(Value::as_str).unwrap_or("")) }
                            td.error-text { (attempt.get("error").and_then(Value::as_str).unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Timeline" }
        ol.timeline #job-timeline {
            @for (at, what) in &timeline { li { (time(*at)) " " (what) } }
        }
    };
    layout(viewer, &format!("Job {}", job.kind.as_str()), "jobs", notice, body)
}

/// Dead jobs, to retry or delete one at a time or in bulk.
pub(crate) fn dead(
    viewer: &Viewer<'_>,
    notice: Option<&str>,
    form: &JobsForm<'_>,
    jobs: &[JobView],
    next: Option<Uuid>,
    lanes: &[LaneStats],
) -> Markup {
    let body = html! {
        p {
            "Dead per lane: "
            @for lane in lanes { span.pill { (lane.lane.as_str()) " " (lane.dead) } " " }
        }
        (filters(viewer, form, "/admin/dead", false))
        form method="post" action="/admin/dead" #bulk {
            (csrf_field(viewer))
            input type="hidden" name="back" value="/admin/dead";
            div.bulk-actions {
                button type="submit" name="action" value="retry" #retry-selected { "Retry selected" }
                button.danger type="submit" name="action" value="delete" #delete-selected { "Delete selected" }
            }
            (job_table(jobs, Some(viewer), "Ended"))
        }
        (next_link("/admin/dead", form, next))
    };
    layout(viewer, "Dead jobs", "dead", notice, body)
}

/// Jobs waiting for a later time (delayed, or backing off before a retry),
/// and the recurring work the scheduler plans.
pub(crate) fn scheduled(
    viewer: &Viewer<'_>,
    form: &JobsForm<'_>,
    jobs: &[JobView],
    next: Option<Uuid>,
    sweeps: &[SweepItem],
) -> Markup {
    let body = html! {
        h2 { "Recurring" }
        ul #recurring {
            li {
                "Reservation sweep: every interval (5 minutes by default), planned by the scheduler's leader. "
                @match sweeps.first() {
                    Some(SweepItem::Platform(sweep)) => {
                        "Last started " (time(sweep.started_at)) ", " (sweep.status) "."
                    }
                    Some(SweepItem::Tenant(sweep)) => {
                        "Last started " (time(sweep.started_at)) ", " (sweep.status) "."
                    }
                    None => { "None has run yet." }
                }
            }
            li { "Inbox polls: every connected inbox, every 15 minutes by default (jittered; idle inboxes back off)." }
        }
        h2 { "Delayed and retrying" }
        (filters(viewer, form, "/admin/scheduled", false))
        (job_table(jobs, None, "Due"))
        (next_link("/admin/scheduled", form, next))
    };
    layout(viewer, "Scheduled", "scheduled", None, body)
}

/// Sweeps, newest first, with a freshness chart: how long after it happened
/// each sweep saw a change, by percentile. The platform sees each sweep's
/// whole report; a tenant admin, the tenant's part of each.
pub(crate) fn sweeps(viewer: &Viewer<'_>, sweeps: &[SweepItem]) -> Markup {
    let oldest_first: Vec<(DateTime<Utc>, &Staleness)> = sweeps
        .iter()
        .rev()
        .map(|item| match item {
            SweepItem::Platform(sweep) => (sweep.started_at, &sweep.staleness),
            SweepItem::Tenant(sweep) => (sweep.started_at, &sweep.staleness),
        })
        .collect();
    let percentile = |pick: fn(&Staleness) -> Option<f64>| -> Vec<(f64, f64)> {
        oldest_first
            .iter()
            .filter_map(|(started_at, staleness)| pick(staleness).map(|value| (started_at.timestamp() as f64, value)))
            .collect()
    };
    let series = vec![
        ("p50".to_owned(), percentile(|staleness| staleness.p50_seconds)),
        ("p99".to_owned(), percentile(|staleness| staleness.p99_seconds)),
        ("max".to_owned(), percentile(|staleness| staleness.max_seconds)),
    ];
    let first = oldest_first.first().map(|(at, _)| at.format("%H:%M").to_string()).unwrap_or_default();
    let last = oldest_first.last().map(|(at, _)| at.format("%H:%M").to_string()).unwrap_or_default();
    let tenant_view = viewer.principal.role != crate::auth::Role::Platform;
    let body = html! {
        figure {
            figcaption { "Staleness of the changes each sweep found, seconds (p50, p99, max)" }
            (line_chart("chart-staleness", &series, (&first, &last)))
            ul.legend { li { span.swatch.p50 {} "p50" } li { span.swatch.p99 {} "p99" } li { span.swatch.max {} "max" } }
        }
        @if tenant_view {
            p.hint { "Sweeps check every tenant's reservations at once; these are your tenant's changes they found." }
            table.grid #sweeps {
                thead { tr {
                    th { "Started" } th { "Status" } th { "Changed" } th { "Duration" }
                    th { "p50" } th { "p99" } th { "max" }
                } }
                tbody {
                    @for item in sweeps {
                        @if let SweepItem::Tenant(sweep) = item {
                            tr {
                                td { (time(sweep.started_at)) }
                                td { (sweep.status) }
                                td { (sweep.changed) }
                                td { @if let Some(duration) = sweep.duration_seconds { (age(duration)) } }
                                (staleness_cells(&sweep.staleness))
                            }
                        }
                    }
                }
            }
        } @else {
            table.grid #sweeps {
                thead { tr {
                    th { "Started" } th { "Status" } th { "Shards" } th { "Skipped" } th { "Checked" } th { "Changed" }
                    th { "304" } th { "Failed" } th { "Duration" } th { "p50" } th { "p99" } th { "max" } th { "Error" }
                } }
                tbody {
                    @for item in sweeps {
                        @if let SweepItem::Platform(sweep) = item {
                            tr {
                                td { (time(sweep.started_at)) }
                                td { (sweep.status) }
                                td { (sweep.finished_shards) "/" (sweep.enqueued) }
                                td { (sweep.skipped) }
                                td { (sweep.checked) }
                                td { (sweep.changed) }
                                td { (sweep.not_modified) }
                                td { (sweep.failed) }
                                td { @if let Some(duration) = sweep.duration_seconds { (age(duration)) } }
                                (staleness_cells(&sweep.staleness))
                                td.error-text { (sweep.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        @if sweeps.is_empty() { p.muted { "No sweeps yet." } }
    };
    layout(viewer, "Sweeps", "sweeps", None, body)
}

fn staleness_cells(staleness: &Staleness) -> Markup {
    html! {
        td { @if let Some(value) = staleness.p50_seconds { (age(value)) } }
        td { @if let Some(value) = staleness.p99_seconds { (age(value)) } }
        td { @if let Some(value) = staleness.max_seconds { (age(value)) } }
    }
}

/// Live worker instances. The page reloads itself every 5 seconds.
pub(crate) fn workers(viewer: &Viewer<'_>, workers: &[WorkerPresence]) -> Markup {
    let body = html! {
        meta http-equiv="refresh" content="5";
        p.hint { "Instances that reported in the last 15 seconds. Each reports every 5." }
        table.grid #workers {
            thead { tr { th { "Instance" } th { "Version" } th { "Lanes (concurrency)" } th { "Started" } th { "Seen" } th { "Running" } } }
            tbody {
                @for worker in workers {
                    tr data-worker=(worker.id) {
                        td.mono { (worker.id) }
                        td { (worker.version) }
                        td { @for lane in &worker.lanes { span.pill { (lane.lane.as_str()) " ×" (lane.concurrency) } " " } }
                        td { (time(worker.started_at)) }
                        td { (time(worker.seen_at)) }
                        td {
                            @if worker.running.is_empty() { span.muted { "idle" } }
                            ul.plain {
                                @for job in &worker.running {
                                    li {
                                        a.mono href={"/admin/jobs/" (job.id)} { (job.id) }
                                        " " (job.kind.as_str()) " · " (job.tenant_id) " · attempt " (job.attempt)
                                        " · since " (time(job.started_at))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if workers.is_empty() { p.muted #no-workers { "No live worker instances." } }
    };
    layout(viewer, "Workers", "workers", None, body)
}

/// The audit log, newest first.
pub(crate) fn audit(viewer: &Viewer<'_>, view: &AuditView) -> Markup {
    let body = html! {
        table.grid #audit {
            thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Detail" } th { "From" } } }
            tbody {
                @for entry in &view.items {
                    tr data-action=(entry.action) {
                        td { (time(entry.at)) }
                        td { (entry.actor) " · " (entry.tenant_id) " · " (entry.role) }
                        td { (entry.action) }
                        td.mono {
                            @if entry.action.starts_with("job.") { a href={"/admin/jobs/" (entry.target)} { (entry.target) } }
                            @else { (entry.target) }
                        }
                        td.mono { @if entry.detail.as_object().is_some_and(|detail| !detail.is_empty()) { (entry.detail.to_string()) } }
                        td { (entry.source_ip.as_deref().unwrap_or("")) br; span.muted { (entry.user_agent.as_deref().unwrap_or("")) } }
                    }
                }
            }
        }
        @if view.items.is_empty() { p.muted { "No admin actions yet." } }
        @if let Some(before) = view.next_before { p { a #next-page href={"/admin/audit?before=" (before)} { "Older →" } } }
    };
    layout(viewer, "Audit log", "audit", None, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(5.4), "5 s");
        assert_eq!(age(125.0), "2 min 5 s");
        assert_eq!(age(3.0 * 3600.0 + 720.0), "3 h 12 min");
        assert_eq!(age(-3.0), "0 s");
    }

    #[test]
    fn chart_json_cannot_close_its_script() {
        let markup = json_data("x", &serde_json::json!({ "a": "</script><script>alert(1)</script>" })).into_string();
        assert!(!markup.contains("</script><script>"), "{markup}");
    }

    #[test]
    fn charts_scale_into_the_box() {
        let markup = line_chart("c", &[("s".to_owned(), vec![(0.0, 0.0), (10.0, 5.0)])], ("a", "b")).into_string();
        assert!(markup.contains("points=\"44.0,180.0 596.0,8.0\""), "{markup}");
        let empty = line_chart("c", &[("s".to_owned(), vec![])], ("a", "b")).into_string();
        assert!(empty.contains("no data yet"));
    }
}
