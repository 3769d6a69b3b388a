//! The reports as PDFs.
//!
//! - The year summary: a title page with the key figures, then a
//!   month-by-month chart and the tables.
//! - Vendor analytics: a title page with the month's figures and a chart of
//!   the top vendors, then every vendor in a table that runs over as many
//!   pages as it needs, its header repeated (up to [`MAX_TABLE_ROWS`]; the
//!   CSV and JSON have the rest).
//!
//! Typeset with krilla in DejaVu Sans (`assets/fonts`, embedded as subsets),
//! text measured with the fonts' own advances, so numbers right-align and
//! long names are cut to their column. The documents carry a title and a
//! creator but no dates, and krilla writes the same bytes for the same
//! input: the same data gives the same file.

use std::sync::OnceLock;

use krilla::{
    color::rgb,
    geom::{PathBuilder, Point, Rect},
    metadata::Metadata,
    page::PageSettings,
    paint::Fill,
    surface::Surface,
    text::{Font, TextDirection},
    Document,
};
use longhaul_jobs::travel::{Ranked, VendorAnalytics, YearSummary};

use super::locale::{Locale, Text};

use crate::fonts::{BOLD, REGULAR};

/// A4, in points.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;

const INK: (u8, u8, u8) = (0x1f, 0x29, 0x37);
const MUTED: (u8, u8, u8) = (0x6b, 0x72, 0x80);
const ACCENT: (u8, u8, u8) = (0x25, 0x63, 0xeb);
const RULE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);
const ALERT: (u8, u8, u8) = (0xdc, 0x26, 0x26);
const BAND: (u8, u8, u8) = (0xf3, 0xf4, 0xf6);

/// Vendor rows the PDF lists at most (some 25 pages).
pub const MAX_TABLE_ROWS: usize = 1_000;

fn paint((r, g, b): (u8, u8, u8)) -> Fill {
    Fill { paint: rgb::Color::new(r, g, b).into(), ..Fill::default() }
}

fn fonts() -> Option<&'static (Font, Font)> {
    static FONTS: OnceLock<Option<(Font, Font)>> = OnceLock::new();
    FONTS.get_or_init(|| Some((Font::new(REGULAR.into(), 0)?, Font::new(BOLD.into(), 0)?))).as_ref()
}

/// The width of `text` at `size` points, from the font's advances.
fn measure(text: &str, size: f32, bold: bool) -> f32 {
    static FACES: OnceLock<Option<(ttf_parser::Face<'static>, ttf_parser::Face<'static>)>> = OnceLock::new();
    let faces =
        FACES.get_or_init(|| Some((ttf_parser::Face::parse(REGULAR, 0).ok()?, ttf_parser::Face::parse(BOLD, 0).ok()?)));
    let Some((regular, heavy)) = faces else {
        // Unreachable with the built-in fonts; DejaVu Sans averages 0.6 em.
        return text.chars().count() as f32 * size * 0.6;
    };
    let face = if bold { heavy } else { regular };
    let units: u32 = text
        .chars()
        .map(|c| face.glyph_index(c).and_then(|glyph| face.glyph_hor_advance(glyph)).map_or(1229, u32::from))
        .sum();
    units as f32 * size / f32::from(face.units_per_em())
}

/// `text`, cut with an ellipsis to fit in `width` points.
fn fit(text: &str, size: f32, bold: bool, width: f32) -> String {
    if measure(text, size, bold) <= width {
        return text.to_owned();
    }
    let mut cut: String = text.to_owned();
    while !cut.is_empty() && measure(&format!("{cut}…"), size, bold) > width {
        cut.pop();
    }
    format!("{}…", cut.trim_end())
}

struct Page<'a, 'b> {
    surface: &'a mut Surface<'b>,
    regular: Font,
    bold: Font,
}

impl Page<'_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, color: (u8, u8, u8), text: &str) {
        self.surface.set_fill(Some(paint(color)));
        let font = if bold { self.bold.clone() } else { self.regular.clone() };
        self.surface.draw_text(Point::from_xy(x, y), font, size, text, false, TextDirection::Auto);
    }

    /// Text centred on `x`.
    fn centred(&mut self, x: f32, y: f32, size: f32, color: (u8, u8, u8), text: &str) {
        self.text(x - measure(text, size, false) / 2.0, y, size, false, color, text);
    }

    /// Text that ends at `x`.
    fn right(&mut self, x: f32, y: f32, size: f32, bold: bool, color: (u8, u8, u8), text: &str) {
        self.text(x - measure(text, size, bold), y, size, bold, color, text);
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
        let Some(rect) = Rect::from_xywh(x, y, w.max(0.1), h.max(0.1)) else { return };
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        if let Some(path) = path.finish() {
            self.surface.set_fill(Some(paint(color)));
            self.surface.draw_path(&path);
        }
    }

    /// A heading, a rule, and `rows` of (label, value); returns the next y.
    fn table(&mut self, x: f32, y: f32, width: f32, heading: &str, rows: &[(String, String)], empty: &str) -> f32 {
        self.text(x, y, 12.0, true, INK, heading);
        self.rect(x, y + 6.0, width, 0.7, RULE);
        let mut y = y + 22.0;
        if rows.is_empty() {
            self.text(x, y, 10.0, false, MUTED, empty);
            return y + 26.0;
        }
        for (label, value) in rows {
            let value_width = measure(value, 10.0, true);
            self.text(x, y, 10.0, false, INK, &fit(label, 10.0, false, width - value_width - 12.0));
            self.right(x + width, y, 10.0, true, INK, value);
            y += 16.0;
        }
        y + 14.0
    }
}

fn ranked(rows: &[Ranked], locale: Locale) -> Vec<(String, String)> {
    rows.iter().map(|r| (r.name.clone(), locale.number(r.count))).collect()
}

/// Words joined with ", ", wrapped to lines of at most `width` characters.
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in words {
        match lines.last_mut() {
            Some(line) if line.chars().count() + word.chars().count() + 2 <= width => {
                line.push_str(", ");
                line.push_str(word);
            }
            _ => lines.push(word.clone()),
        }
    }
    lines
}

/// Renders the report. `who` names the user on the title page.
pub fn year_summary(summary: &YearSummary, who: &str, locale: Locale) -> Result<Vec<u8>, String> {
    let (regular, bold) = fonts().cloned().ok_or("the built-in fonts do not load")?;
    let settings = PageSettings::from_wh(WIDTH, HEIGHT).ok_or("bad page size")?;
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new().title(format!("{} {}", summary.year, locale.text(Text::Title))).creator("longhaul".to_owned()),
    );

    // The title page: the year and its key figures.
    {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut p = Page { surface: &mut surface, regular: regular.clone(), bold: bold.clone() };
        p.rect(0.0, 0.0, WIDTH, 8.0, ACCENT);
        p.text(MARGIN, 150.0, 40.0, true, INK, &summary.year.to_string());
        p.text(MARGIN, 190.0, 26.0, false, INK, locale.text(Text::Title));
        p.text(MARGIN, 222.0, 12.0, false, MUTED, who);
        if summary.is_empty() {
            p.text(MARGIN, 300.0, 14.0, false, INK, locale.text(Text::Empty));
        } else {
            let figures = [
                (Text::Trips, locale.number(summary.trips)),
                (Text::Reservations, locale.number(summary.reservations)),
                (Text::HotelNights, locale.number(summary.hotel_nights)),
                (Text::Flights, locale.number(summary.flights)),
                (Text::Distance, format!("{} km", locale.number(summary.distance_km))),
                (Text::Countries, locale.number(summary.countries.len() as i64)),
                (Text::Cities, locale.number(summary.cities.len() as i64)),
                (Text::Cancelled, locale.number(summary.cancelled)),
            ];
            for (i, (label, value)) in figures.iter().enumerate() {
                let x = MARGIN + (i % 2) as f32 * 250.0;
                let y = 300.0 + (i / 2) as f32 * 70.0;
                p.text(x, y, 10.0, false, MUTED, locale.text(*label));
                p.text(x, y + 28.0, 24.0, true, INK, value);
            }
            let mut y = 600.0;
            for (label, trip) in [(Text::FirstTrip, &summary.first_trip), (Text::LastTrip, &summary.last_trip)] {
                if let Some(trip) = trip {
                    p.text(MARGIN, y, 10.0, false, MUTED, locale.text(label));
                    // The trip's days as the user lived them, in their zone.
                    let (starts, ends) =
                        (summary.time_zone.local(trip.starts_at), summary.time_zone.local(trip.ends_at));
                    let when = format!("{}: {} – {}", trip.name, locale.date(starts), locale.date(ends));
                    p.text(MARGIN, y + 18.0, 12.0, false, INK, &when);
                    y += 48.0;
                }
            }
            if let Some(month) = summary.busiest_month {
                p.text(MARGIN, y, 10.0, false, MUTED, locale.text(Text::BusiestMonth));
                p.text(MARGIN, y + 18.0, 12.0, false, INK, locale.month(month));
            }
        }
        surface.finish();
        page.finish();
    }

    // The chart and the tables.
    if !summary.is_empty() {
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        let mut p = Page { surface: &mut surface, regular, bold };
        p.text(MARGIN, 70.0, 12.0, true, INK, locale.text(Text::ByMonth));
        let (top, bottom) = (95.0, 255.0);
        let most = summary.by_month.iter().copied().max().unwrap_or(0).max(1) as f32;
        let slot = (WIDTH - 2.0 * MARGIN) / 12.0;
        for (i, count) in summary.by_month.iter().enumerate() {
            let x = MARGIN + i as f32 * slot;
            let height = (bottom - top) * *count as f32 / most;
            p.rect(x + slot * 0.15, bottom - height, slot * 0.7, height, ACCENT);
            if *count > 0 {
                p.centred(x + slot / 2.0, bottom - height - 4.0, 9.0, INK, &locale.number(*count));
            }
            p.centred(x + slot / 2.0, bottom + 14.0, 9.0, MUTED, &locale.month_short(i as u32 + 1));
        }
        p.rect(MARGIN, bottom, WIDTH - 2.0 * MARGIN, 0.7, RULE);

        let column = (WIDTH - 2.0 * MARGIN - 30.0) / 2.0;
        let by_type: Vec<(String, String)> =
            summary.by_type.iter().map(|(kind, count)| (locale.kind(kind).to_owned(), locale.number(*count))).collect();
        let none = locale.text(Text::None_);
        let left = p.table(MARGIN, 310.0, column, locale.text(Text::ByType), &by_type, none);
        let left = p.table(
            MARGIN,
            left,
            column,
            locale.text(Text::TopRentals),
            &ranked(&summary.top_car_rentals, locale),
            none,
        );
        let right_x = MARGIN + column + 30.0;
        let right = p.table(
            right_x,
            310.0,
            column,
            locale.text(Text::TopAirlines),
            &ranked(&summary.top_airlines, locale),
            none,
        );
        let right =
            p.table(right_x, right, column, locale.text(Text::TopHotels), &ranked(&summary.top_hotels, locale), none);
        let mut y = left.max(right);
        p.text(MARGIN, y, 12.0, true, INK, locale.text(Text::Places));
        p.rect(MARGIN, y + 6.0, WIDTH - 2.0 * MARGIN, 0.7, RULE);
        y += 22.0;
        for (label, words) in [(Text::Countries, &summary.countries), (Text::Cities, &summary.cities)] {
            p.text(MARGIN, y, 10.0, true, INK, locale.text(label));
            y += 15.0;
            for line in wrap(words, 80) {
                p.text(MARGIN, y, 10.0, false, INK, &line);
                y += 14.0;
            }
            y += 8.0;
        }
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|err| format!("cannot write the PDF: {err:?}"))
}

/// The columns of the vendor table: a header, where the column ends (for
/// numbers, right-aligned) or starts, and its cell.
struct Column {
    header: Text,
    /// Left edge for text, right edge for numbers, from the margin.
    x: f32,
    numeric: bool,
}

const VENDOR_COLUMNS: [Column; 6] = [
    Column { header: Text::Vendor, x: 0.0, numeric: false },
    Column { header: Text::Type, x: 150.0, numeric: false },
    Column { header: Text::Reservations, x: 300.0, numeric: true },
    Column { header: Text::Cancelled, x: 363.0, numeric: true },
    Column { header: Text::Changed, x: 423.0, numeric: true },
    Column { header: Text::Changes, x: 483.0, numeric: true },
];

/// Renders the month of a tenant's vendors. `tenant` names it on the title
/// page.
pub fn vendor_analytics(analytics: &VendorAnalytics, tenant: &str, locale: Locale) -> Result<Vec<u8>, String> {
    let (regular, bold) = fonts().cloned().ok_or("the built-in fonts do not load")?;
    let settings = PageSettings::from_wh(WIDTH, HEIGHT).ok_or("bad page size")?;
    let (year, month) = analytics
        .month
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("`{}` is not a month", analytics.month))?;
    let when = locale.month_of_year(year, month);
    let title = locale.text(Text::VendorTitle);
    let mut document = Document::new();
    document.set_metadata(Metadata::new().title(format!("{title}, {when}")).creator("longhaul".to_owned()));
    let footer = |p: &mut Page, number: usize| {
        let line = format!("longhaul · {title} · {when} · {} {number}", locale.text(Text::Page));
        p.right(WIDTH - MARGIN, HEIGHT - 30.0, 8.0, false, MUTED, &line);
    };

    // The title page: the month's figures, and the top vendors as bars.
    {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut p = Page { surface: &mut surface, regular: regular.clone(), bold: bold.clone() };
        p.rect(0.0, 0.0, WIDTH, 8.0, ACCENT);
        p.text(MARGIN, 150.0, 34.0, true, INK, &when);
        p.text(MARGIN, 188.0, 24.0, false, INK, title);
        p.text(MARGIN, 218.0, 12.0, false, MUTED, &fit(tenant, 12.0, false, WIDTH - 2.0 * MARGIN));
        if analytics.is_empty() {
            p.text(MARGIN, 300.0, 14.0, false, INK, locale.text(Text::EmptyMonth));
        } else {
            let share =
                |part: i64| format!("{} · {}", locale.number(part), locale.percent(part, analytics.reservations));
            let figures = [
                (Text::Reservations, locale.number(analytics.reservations)),
                (Text::Vendors, locale.number(analytics.vendors)),
                (Text::Cancelled, share(analytics.cancelled)),
                (Text::ChangedReservations, share(analytics.changed)),
                (Text::VendorChanges, locale.number(analytics.changes)),
            ];
            for (i, (label, value)) in figures.iter().enumerate() {
                let x = MARGIN + (i % 2) as f32 * 250.0;
                let y = 290.0 + (i / 2) as f32 * 64.0;
                p.text(x, y, 10.0, false, MUTED, locale.text(*label));
                p.text(x, y + 26.0, 22.0, true, INK, value);
            }
            let top = &analytics.rows[..analytics.rows.len().min(10)];
            let mut y = 500.0;
            p.text(MARGIN, y, 12.0, true, INK, locale.text(Text::TopVendors));
            p.rect(MARGIN, y + 6.0, WIDTH - 2.0 * MARGIN, 0.7, RULE);
            y += 26.0;
            let most = top.first().map_or(1, |row| row.reservations.max(1)) as f32;
            let (bars_x, label_width, number_width) = (MARGIN + 170.0, 160.0, 60.0);
            let bar_room = WIDTH - MARGIN - bars_x - number_width;
            for row in top {
                let label = format!("{} · {}", row.vendor, locale.kind(row.kind.as_str()));
                p.text(MARGIN, y, 9.0, false, INK, &fit(&label, 9.0, false, label_width));
                let length = bar_room * row.reservations as f32 / most;
                p.rect(bars_x, y - 8.0, length, 10.0, ACCENT);
                if row.cancelled > 0 {
                    let cancelled = length * row.cancelled as f32 / row.reservations.max(1) as f32;
                    p.rect(bars_x, y - 8.0, cancelled, 10.0, ALERT);
                }
                p.right(WIDTH - MARGIN, y, 9.0, true, INK, &locale.number(row.reservations));
                y += 22.0;
            }
        }
        footer(&mut p, 1);
        surface.finish();
        page.finish();
    }

    // Every vendor, in pages of a table.
    let shown = &analytics.rows[..analytics.rows.len().min(MAX_TABLE_ROWS)];
    const ROW: f32 = 16.0;
    const TOP: f32 = 80.0;
    let per_page = ((HEIGHT - 70.0 - TOP - 2.0 * ROW) / ROW) as usize;
    let left_out = analytics.rows.len() - shown.len();
    let mut chunks: Vec<&[longhaul_jobs::travel::VendorFigures]> = shown.chunks(per_page.max(1)).collect();
    if chunks.is_empty() && left_out > 0 {
        chunks.push(&[]);
    }
    let last_chunk = chunks.len().saturating_sub(1);
    for (number, rows) in chunks.into_iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut p = Page { surface: &mut surface, regular: regular.clone(), bold: bold.clone() };
        p.text(MARGIN, 56.0, 12.0, true, INK, locale.text(Text::AllVendors));
        let mut y = TOP;
        for column in &VENDOR_COLUMNS {
            let header = locale.text(column.header);
            if column.numeric {
                p.right(MARGIN + column.x, y, 9.0, true, MUTED, header);
            } else {
                p.text(MARGIN + column.x, y, 9.0, true, MUTED, header);
            }
        }
        p.rect(MARGIN, y + 5.0, WIDTH - 2.0 * MARGIN, 0.7, RULE);
        y += ROW + 2.0;
        for (i, row) in rows.iter().enumerate() {
            if i % 2 == 1 {
                p.rect(MARGIN - 4.0, y - 11.0, WIDTH - 2.0 * MARGIN + 8.0, ROW, BAND);
            }
            let cells = [
                fit(&row.vendor, 9.0, false, VENDOR_COLUMNS[1].x - 12.0),
                locale.kind(row.kind.as_str()).to_owned(),
                locale.number(row.reservations),
                locale.number(row.cancelled),
                locale.number(row.changed),
                locale.number(row.changes),
            ];
            for (column, cell) in VENDOR_COLUMNS.iter().zip(&cells) {
                if column.numeric {
                    p.right(MARGIN + column.x, y, 9.0, false, INK, cell);
                } else {
                    p.text(MARGIN + column.x, y, 9.0, false, INK, cell);
                }
            }
            y += ROW;
        }
        if number == last_chunk && left_out > 0 {
            p.text(MARGIN, y + 8.0, 9.0, false, MUTED, &locale.more_rows(left_out));
        }
        footer(&mut p, number + 2);
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|err| format!("cannot write the PDF: {err:?}"))
}

/// A funnel: the span and window, then the funnel's bars overall (users at
/// each step, the share of the previous step, the drop-off), then each
/// platform's, on as many pages as they need.
pub fn funnel(funnel: &super::funnel::Funnel, tenant: &str, locale: Locale) -> Result<Vec<u8>, String> {
    let (regular, bold) = fonts().cloned().ok_or("the built-in fonts do not load")?;
    let settings = PageSettings::from_wh(WIDTH, HEIGHT).ok_or("bad page size")?;
    let title = locale.text(Text::FunnelTitle);
    let span = format!("{} – {}", locale.date(funnel.request.from), locale.date(funnel.request.to));
    let mut document = Document::new();
    document.set_metadata(Metadata::new().title(format!("{title}, {span}")).creator("longhaul".to_owned()));
    let groups: Vec<(String, &[super::funnel::StepFigures])> =
        std::iter::once((locale.text(Text::AllPlatforms).to_owned(), funnel.overall.as_slice()))
            .chain(funnel.platforms.iter().map(|(platform, figures)| (platform.clone(), figures.as_slice())))
            .collect();
    // The first page holds the title and one funnel; the next, two each.
    let mut pages: Vec<Vec<(String, &[super::funnel::StepFigures])>> = vec![groups.iter().take(1).cloned().collect()];
    pages.extend(groups[1.min(groups.len())..].chunks(2).map(<[_]>::to_vec));
    for (number, chart) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut p = Page { surface: &mut surface, regular: regular.clone(), bold: bold.clone() };
        let mut y = 80.0;
        if number == 0 {
            p.rect(0.0, 0.0, WIDTH, 8.0, ACCENT);
            p.text(MARGIN, 110.0, 30.0, true, INK, title);
            p.text(MARGIN, 140.0, 13.0, false, INK, &span);
            p.text(MARGIN, 160.0, 10.0, false, MUTED, &fit(tenant, 10.0, false, WIDTH - 2.0 * MARGIN));
            let window = format!("{} {}", locale.text(Text::Window), funnel.request.window_hours);
            p.text(MARGIN, 178.0, 10.0, false, MUTED, &window);
            y = 220.0;
            if funnel.overall.first().is_none_or(|step| step.users == 0) {
                p.text(MARGIN, y, 14.0, false, INK, locale.text(Text::EmptyFunnel));
            }
        }
        for (name, figures) in chart {
            y = funnel_chart(&mut p, y, name, figures, locale);
        }
        let line = format!("longhaul · {title} · {span} · {} {}", locale.text(Text::Page), number + 1);
        p.right(WIDTH - MARGIN, HEIGHT - 30.0, 8.0, false, MUTED, &line);
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|err| format!("cannot write the PDF: {err:?}"))
}

/// One funnel's bars from `y`, each as wide as its share of the first
/// step's users, with its step, users, share of the previous step and
/// drop-off; returns the next y.
fn funnel_chart(p: &mut Page, y: f32, name: &str, figures: &[super::funnel::StepFigures], locale: Locale) -> f32 {
    p.text(MARGIN, y, 12.0, true, INK, name);
    p.rect(MARGIN, y + 6.0, WIDTH - 2.0 * MARGIN, 0.7, RULE);
    let mut y = y + 30.0;
    let most = figures.first().map_or(1, |step| step.users.max(1)) as f32;
    let (label_width, room) = (130.0, WIDTH - 2.0 * MARGIN - 130.0);
    for (index, step) in figures.iter().enumerate() {
        p.text(MARGIN, y, 9.0, true, INK, &fit(&step.step, 9.0, true, label_width - 8.0));
        let length = room * step.users as f32 / most;
        let x = MARGIN + label_width + (room - length) / 2.0;
        p.rect(x, y - 10.0, length, 14.0, ACCENT);
        let users = format!("{} {}", locale.number(step.users as i64), locale.text(Text::Users));
        p.text(MARGIN, y + 12.0, 8.0, false, MUTED, &users);
        if index > 0 {
            let share = (step.conversion_from_previous * 1000.0).round() as i64;
            let detail = format!(
                "{} {} · {} {}",
                locale.percent(share, 1000),
                locale.text(Text::FromPrevious),
                locale.number(step.drop_off as i64),
                locale.text(Text::DropOff)
            );
            p.right(WIDTH - MARGIN, y + 12.0, 8.0, false, MUTED, &detail);
        }
        y += 36.0;
    }
    y + 20.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_measured_with_the_fonts_advances() {
        // DejaVu Sans: digits are 1303 units of 2048, a space 651.
        assert!((measure("10", 10.0, false) - 2.0 * 1303.0 * 10.0 / 2048.0).abs() < 0.01);
        assert!(measure("W", 10.0, true) > measure("i", 10.0, true));
        let cut = fit("Companhia Aérea de Transportes Intercontinentais do Atlântico Sul", 9.0, false, 100.0);
        assert!(cut.ends_with('…') && measure(&cut, 9.0, false) <= 100.0, "{cut}");
        assert_eq!(fit("TAP", 9.0, false, 100.0), "TAP");
    }

    #[test]
    fn the_vendor_columns_never_overlap_in_either_language() {
        for locale in [Locale::En, Locale::PtBr] {
            let widest_type = longhaul_jobs::travel::ReservationType::ALL
                .iter()
                .map(|kind| measure(locale.kind(kind.as_str()), 9.0, false))
                .fold(0.0, f32::max);
            let spans: Vec<(f32, f32)> = VENDOR_COLUMNS
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    let header = measure(locale.text(column.header), 9.0, true);
                    if column.numeric {
                        // Room for 99,999,999 under a short header.
                        let cell = measure("99,999,999", 9.0, false);
                        (column.x - header.max(cell), column.x)
                    } else if i == 0 {
                        (column.x, VENDOR_COLUMNS[1].x - 12.0)
                    } else {
                        (column.x, column.x + header.max(widest_type))
                    }
                })
                .collect();
            for pair in spans.windows(2) {
                assert!(pair[0].1 + 4.0 <= pair[1].0, "{locale:?}: columns {pair:?} touch in {spans:?}");
            }
            assert!(spans.last().is_some_and(|last| last.1 <= WIDTH - 2.0 * MARGIN));
        }
    }
}
