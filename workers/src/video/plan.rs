//! The shape of a film: its frame size, its timing and its encoder settings.
//! Everything here is arithmetic, so that a test or a bench can say how long
//! a film must be without making one.

pub use longhaul_jobs::kind::Aspect;

/// How long each part of the film lasts, in frames.
///
/// The film is a chain of clips (the title card, one per photo, the end
/// card), each overlapping the next by one crossfade:
/// `frames = Σ clip − (clips − 1) × fade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub fps: u32,
    pub card_frames: u32,
    pub photo_frames: u32,
    pub fade_frames: u32,
}

impl Default for Timing {
    /// 30 fps; cards and photos 3 s; crossfades 1 s.
    fn default() -> Self {
        Timing { fps: 30, card_frames: 90, photo_frames: 90, fade_frames: 30 }
    }
}

impl Timing {
    /// Rejects a timing whose fades would overlap each other inside a clip,
    /// or whose photos fall outside 2–4 s and fades outside 0.5–1 s.
    pub fn validate(&self) -> Result<(), String> {
        let fps = self.fps;
        if !(10..=60).contains(&fps) {
            return Err(format!("{fps} fps is outside 10–60"));
        }
        if !(2 * fps..=4 * fps).contains(&self.photo_frames) {
            return Err("a photo must last 2–4 s".to_owned());
        }
        if !(fps / 2..=fps).contains(&self.fade_frames) {
            return Err("a crossfade must last 0.5–1 s".to_owned());
        }
        if self.card_frames < 2 * self.fade_frames || self.photo_frames < 2 * self.fade_frames {
            return Err("a clip must be at least two crossfades long".to_owned());
        }
        Ok(())
    }

    /// Frames in a film of `photos` photos between the two cards.
    pub fn frames(&self, photos: usize) -> u64 {
        let clips = photos as u64 + 2;
        let sum = 2 * u64::from(self.card_frames) + photos as u64 * u64::from(self.photo_frames);
        sum - (clips - 1) * u64::from(self.fade_frames)
    }

    /// The same, in seconds.
    pub fn seconds(&self, photos: usize) -> f64 {
        self.frames(photos) as f64 / f64::from(self.fps)
    }
}

/// What x264 is asked for. The defaults favour speed over size, as a batch
/// of yearly videos must finish in a week; `tune=stillimage` because most of
/// every frame is a photo moving slowly. x264 holds every frame of its
/// lookahead (13 MB each at 1080×1920): a 5-frame lookahead, run on the
/// encoding thread, keeps a film's memory under 300 MB where the preset's
/// own (10 frames, and a lookahead thread with its own buffers) needs
/// 60 MB more, for a file within a few percent of the size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X264 {
    pub preset: String,
    pub crf: u8,
    pub tune: Option<String>,
    /// Frames between keyframes.
    pub gop: u32,
    /// Encoder threads; 0 lets x264 choose from the cores.
    pub threads: u32,
    /// Extra `x264-params` (`key=value:key=value`).
    pub params: Option<String>,
}

impl Default for X264 {
    fn default() -> Self {
        X264 {
            preset: "veryfast".to_owned(),
            crf: 22,
            tune: Some("stillimage".to_owned()),
            gop: 60,
            threads: 0,
            params: Some("rc-lookahead=5:sync-lookahead=0".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_film_is_its_clips_less_the_overlaps() {
        let timing = Timing::default();
        // Title 90 + 30 photos × 90 + end 90, less 31 fades of 30.
        assert_eq!(timing.frames(30), 90 + 30 * 90 + 90 - 31 * 30);
        assert_eq!(timing.frames(0), 90 + 90 - 30);
        assert!((timing.seconds(30) - 65.0).abs() < 1e-9);
        assert!(timing.validate().is_ok());
    }

    #[test]
    fn timings_out_of_range_are_refused() {
        let too_long_fade = Timing { fade_frames: 45, ..Timing::default() };
        assert!(too_long_fade.validate().is_err());
        let too_short_photo = Timing { photo_frames: 30, ..Timing::default() };
        assert!(too_short_photo.validate().is_err());
    }

    #[test]
    fn aspects_parse_and_are_even() {
        for text in ["9:16", "16:9"] {
            let aspect = Aspect::parse(text).unwrap();
            assert_eq!(aspect.as_str(), text);
            let (w, h) = aspect.size();
            assert_eq!((w % 2, h % 2), (0, 0));
        }
        assert_eq!(Aspect::parse("4:3"), None);
    }
}
