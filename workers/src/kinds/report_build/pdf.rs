//! The year summary as a PDF: a title page with the key figures, then a
//! month-by-month chart and the tables.
//!
//! Typeset with krilla in DejaVu Sans (`assets/fonts`, embedded as subsets).
//! The document carries a title and a creator but no dates, and krilla
//! writes the same bytes for the same input: the same year gives the same
//! file.

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
use longhaul_jobs::travel::{Ranked, YearSummary};

use super::locale::{Locale, Text};

const REGULAR: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans-Bold.ttf");

/// A4, in points.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;

const INK: (u8, u8, u8) = (0x1f, 0x29, 0x37);
const MUTED: (u8, u8, u8) = (0x6b, 0x72, 0x80);
const ACCENT: (u8, u8, u8) = (0x25, 0x63, 0xeb);
const RULE: (u8, u8, u8) = (0xd1, 0xd5, 0xdb);

fn paint((r, g, b): (u8, u8, u8)) -> Fill {
    Fill { paint: rgb::Color::new(r, g, b).into(), ..Fill::default() }
}

fn fonts() -> Option<&'static (Font, Font)> {
    static FONTS: OnceLock<Option<(Font, Font)>> = OnceLock::new();
    FONTS.get_or_init(|| Some((Font::new(REGULAR.into(), 0)?, Font::new(BOLD.into(), 0)?))).as_ref()
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

    /// Text centred on `x`, its width estimated (DejaVu Sans averages about
    /// 0.6 em per character).
    fn centred(&mut self, x: f32, y: f32, size: f32, color: (u8, u8, u8), text: &str) {
        let width = text.chars().count() as f32 * size * 0.6;
        self.text(x - width / 2.0, y, size, false, color, text);
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
            self.text(x, y, 10.0, false, INK, label);
            self.text(x + width - 60.0, y, 10.0, true, INK, value);
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
                    let when =
                        format!("{}: {} – {}", trip.name, locale.date(trip.starts_at), locale.date(trip.ends_at));
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
