//! Text and cards: the title card, the end card and each photo's caption,
//! set in DejaVu Sans with `ab_glyph` and prepared once as [`Overlay`]s.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};

use super::raster::{Mask, Overlay, Yuv, YuvColor};
use crate::fonts;

/// The two weights, parsed once per film.
pub struct Typefaces {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Regular,
    Bold,
}

impl Typefaces {
    pub fn load() -> Result<Typefaces, String> {
        let parse = |bytes: &'static [u8]| {
            FontRef::try_from_slice(bytes).map_err(|err| format!("the built-in font does not parse: {err}"))
        };
        Ok(Typefaces { regular: parse(fonts::REGULAR)?, bold: parse(fonts::BOLD)? })
    }

    fn font(&self, weight: Weight) -> &FontRef<'static> {
        match weight {
            Weight::Regular => &self.regular,
            Weight::Bold => &self.bold,
        }
    }

    /// The advance width of `text` at `px`, kerning included.
    pub fn width(&self, weight: Weight, px: f32, text: &str) -> f32 {
        let font = self.font(weight).as_scaled(PxScale::from(px));
        let mut width = 0.0;
        let mut previous = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                width += font.kern(previous, id);
            }
            width += font.h_advance(id);
            previous = Some(id);
        }
        width
    }

    /// `text`, cut with an ellipsis so that it fits in `max_width`.
    pub fn fit(&self, weight: Weight, px: f32, max_width: f32, text: &str) -> String {
        if self.width(weight, px, text) <= max_width {
            return text.to_owned();
        }
        let mut chars: Vec<char> = text.chars().collect();
        while !chars.is_empty() {
            chars.pop();
            let candidate: String = chars.iter().collect::<String>().trim_end().to_owned() + "…";
            if self.width(weight, px, &candidate) <= max_width {
                return candidate;
            }
        }
        String::new()
    }

    /// Draws `text` into `mask` with its baseline at `baseline` and its left
    /// edge at `x`, antialiased.
    pub fn draw(&self, mask: &mut Mask, weight: Weight, px: f32, x: f32, baseline: f32, text: &str) {
        let font = self.font(weight);
        let scaled = font.as_scaled(PxScale::from(px));
        let mut caret = x;
        let mut previous = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(previous) = previous {
                caret += scaled.kern(previous, id);
            }
            let glyph = id.with_scale_and_position(px, ab_glyph::point(caret, baseline));
            caret += scaled.h_advance(id);
            previous = Some(id);
            let Some(outlined) = font.outline_glyph(glyph) else { continue };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, coverage| {
                let alpha = (coverage.clamp(0.0, 1.0) * 255.0).round() as u8;
                mask.cover(bounds.min.x as i64 + i64::from(gx), bounds.min.y as i64 + i64::from(gy), alpha);
            });
        }
    }

    /// Draws `text` centred on `centre`.
    pub fn draw_centred(&self, mask: &mut Mask, weight: Weight, px: f32, centre: f32, baseline: f32, text: &str) {
        let max = mask.width as f32 * 0.9;
        let text = self.fit(weight, px, max, text);
        let width = self.width(weight, px, &text);
        self.draw(mask, weight, px, centre - width / 2.0, baseline, &text);
    }
}

/// A card's words: a headline (the year, or a total), a line under it, and
/// smaller lines of figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    pub headline: String,
    pub subtitle: String,
    pub lines: Vec<String>,
}

/// The colours of a card: a vertical gradient and an accent for the rule.
const CARD_TOP: (u8, u8, u8) = (18, 32, 58);
const CARD_BOTTOM: (u8, u8, u8) = (64, 28, 66);
const ACCENT: (u8, u8, u8) = (255, 183, 77);
const SOFT_WHITE: (u8, u8, u8) = (222, 226, 236);

/// Renders a card as a still frame.
pub fn card_frame(faces: &Typefaces, card: &Card, width: usize, height: usize) -> Yuv {
    let mut frame = Yuv::filled(width, height, YuvColor::BLACK);
    let mix = |a: u8, b: u8, t: f32| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
    // A gradient, painted two rows at a time to keep chroma in step.
    for pair in 0..height / 2 {
        let t = (pair * 2) as f32 / height.max(1) as f32;
        let color = YuvColor::from_rgb(
            mix(CARD_TOP.0, CARD_BOTTOM.0, t),
            mix(CARD_TOP.1, CARD_BOTTOM.1, t),
            mix(CARD_TOP.2, CARD_BOTTOM.2, t),
        );
        for y in [pair * 2, pair * 2 + 1] {
            frame.y.data[y * width..(y + 1) * width].fill(color.y);
        }
        let cw = width / 2;
        frame.u.data[pair * cw..(pair + 1) * cw].fill(color.u);
        frame.v.data[pair * cw..(pair + 1) * cw].fill(color.v);
    }
    card_overlay(faces, card, width, height).apply(&mut frame);
    frame
}

fn card_overlay(faces: &Typefaces, card: &Card, width: usize, height: usize) -> Overlay {
    let short = width.min(height) as f32;
    let centre = width as f32 / 2.0;
    let headline_px = short * 0.24;
    let subtitle_px = short * 0.06;
    let line_px = short * 0.045;
    let line_gap = line_px * 1.6;
    let block = headline_px + subtitle_px * 1.8 + line_gap * card.lines.len() as f32 + short * 0.06;
    // Only the band the words occupy is painted, not the whole frame.
    let top = (((height as f32 - block) / 2.0 - short * 0.05).max(0.0)) as usize;
    let band = ((block + short * 0.12) as usize).min(height - top);
    let mut overlay = Overlay::new(0, top, width, band);
    let (w, h) = overlay.size();
    let top = top & !1;
    let mut white = Mask::new(w, h);
    let mut soft = Mask::new(w, h);
    let mut accent = Mask::new(w, h);

    let mut baseline = (height as f32 - block) / 2.0 + headline_px * 0.8 - top as f32;
    faces.draw_centred(&mut white, Weight::Bold, headline_px, centre, baseline, &card.headline);
    baseline += short * 0.07;
    // The accent rule under the headline.
    let rule = (short * 0.16) as i64;
    let thickness = (short * 0.008).max(2.0) as i64;
    for y in 0..thickness {
        for x in 0..rule {
            accent.cover(centre as i64 - rule / 2 + x, baseline as i64 + y, 255);
        }
    }
    baseline += subtitle_px * 1.6;
    faces.draw_centred(&mut white, Weight::Bold, subtitle_px, centre, baseline, &card.subtitle);
    baseline += subtitle_px * 0.6;
    for line in &card.lines {
        baseline += line_gap;
        faces.draw_centred(&mut soft, Weight::Regular, line_px, centre, baseline, line);
    }
    overlay.paint(&accent, YuvColor::from_rgb(ACCENT.0, ACCENT.1, ACCENT.2));
    overlay.paint(&white, YuvColor::WHITE);
    overlay.paint(&soft, YuvColor::from_rgb(SOFT_WHITE.0, SOFT_WHITE.1, SOFT_WHITE.2));
    overlay
}

/// A photo's caption, low on the frame over a darkening gradient: the place
/// (or the photo's own caption) in bold, the date under it.
pub fn caption_overlay(faces: &Typefaces, title: &str, detail: &str, width: usize, height: usize) -> Overlay {
    let short = width.min(height) as f32;
    let band = (height as f32 * if height > width { 0.24 } else { 0.3 }) as usize;
    let mut overlay = Overlay::new(0, height - band, width, band);
    let (w, h) = overlay.size();
    let margin = short * 0.06;
    let title_px = short * 0.058;
    let detail_px = short * 0.04;

    // The scrim: transparent at the top of the band, darkest at the bottom.
    let mut scrim = Mask::new(w, h);
    for y in 0..h {
        let t = y as f32 / h.max(1) as f32;
        let alpha = (t * t * 175.0).round() as u8;
        scrim.data[y * w..(y + 1) * w].fill(alpha);
    }
    let mut ink = Mask::new(w, h);
    let detail_baseline = h as f32 - margin;
    let title_baseline = detail_baseline - detail_px * 1.6;
    let max = w as f32 - 2.0 * margin;
    if !title.is_empty() {
        let title = faces.fit(Weight::Bold, title_px, max, title);
        faces.draw(&mut ink, Weight::Bold, title_px, margin, title_baseline, &title);
    }
    let detail = faces.fit(Weight::Regular, detail_px, max, detail);
    faces.draw(&mut ink, Weight::Regular, detail_px, margin, detail_baseline, &detail);
    let offset = (short * 0.003).max(2.0) as usize;
    overlay.paint(&scrim, YuvColor::BLACK);
    overlay.paint(&ink.shadow(offset, offset, 160), YuvColor::BLACK);
    overlay.paint(&ink, YuvColor::WHITE);
    overlay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_fit() {
        let faces = Typefaces::load().unwrap();
        let text = "Aeroporto Internacional Antônio Carlos Jobim, Rio de Janeiro, Brasil";
        let cut = faces.fit(Weight::Bold, 60.0, 400.0, text);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(faces.width(Weight::Bold, 60.0, &cut) <= 400.0);
        assert_eq!(faces.fit(Weight::Bold, 60.0, 4000.0, "Lisbon"), "Lisbon");
    }

    #[test]
    fn a_card_has_ink_on_it() {
        let faces = Typefaces::load().unwrap();
        let card = Card { headline: "2026".into(), subtitle: "Ana's year".into(), lines: vec!["6 trips".into()] };
        let frame = card_frame(&faces, &card, 540, 960);
        // The headline is white on a dark gradient: some luma near white.
        assert!(frame.y.data.iter().filter(|&&y| y > 220).count() > 2_000);
        let captioned = {
            let mut f = Yuv::filled(540, 960, YuvColor::from_rgb(90, 140, 200));
            caption_overlay(&faces, "Lisbon", "2 May 2026", 540, 960).apply(&mut f);
            f
        };
        // The caption's band darkens the bottom and writes white on it.
        let bottom = captioned.y.row(950);
        assert!(bottom.iter().all(|&y| y < 120), "the scrim darkens the bottom rows");
        assert!(captioned.y.data.iter().any(|&y| y > 220));
    }
}
