//! Compiling a film: the title card, one Ken Burns clip per usable photo,
//! the end card, crossfaded, with music, into an MP4 and a JPEG thumbnail.
//!
//! Three threads share the work, with bounded hand-offs between them:
//!
//! - the **loader** decodes and prepares one photo at a time, only when
//!   asked: the film never holds more than the photo on screen and the next;
//! - the **renderer** (the caller's thread) draws each frame in YUV;
//! - the **encoder** owns libav: it encodes and muxes, and hands each frame
//!   buffer back to be drawn again.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
    thread,
};

use image::codecs::jpeg::JpegEncoder;

use super::{
    encode::Mp4Writer,
    photo,
    plan::{Aspect, Timing, X264},
    raster::{crossfade, Overlay, Sampler, View, Yuv, YuvColor},
    text::{caption_overlay, card_frame, Card, Typefaces},
};

/// How much bigger than the frame each photo is prepared: the Ken Burns
/// move zooms between 1× and 1.2×.
pub const ZOOM: f64 = 1.2;

/// One photo to show, and its caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoSpec {
    /// Names the photo in the result (`skipped`), not shown.
    pub id: String,
    /// The caption's first line, in bold: the place, trip or the photo's own
    /// caption. May be empty.
    pub title: String,
    /// The caption's second line: the date.
    pub detail: String,
}

/// Everything a film is made from, but the photos' bytes.
#[derive(Debug, Clone)]
pub struct FilmSpec {
    pub aspect: Aspect,
    pub timing: Timing,
    pub x264: X264,
    pub title: Card,
    /// The end card; `{photos}` in any line becomes the number of photos
    /// shown.
    pub end: Card,
    pub photos: Vec<PhotoSpec>,
    /// An audio file's bytes, or no soundtrack.
    pub music: Option<&'static [u8]>,
}

/// Where the photos' bytes come from (the object store, or a directory).
pub trait PhotoSource: Sync {
    /// The bytes of `spec.photos[index]`, or why they cannot be had.
    fn read(&self, index: usize) -> Result<Vec<u8>, String>;
}

/// Who follows the compile: progress as frames are drawn, and whether to
/// stop.
pub trait Watch: Sync {
    fn progress(&self, frame: u64, total: u64);
    fn cancelled(&self) -> bool;
}

/// A photo left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

/// A finished film.
#[derive(Debug, Clone)]
pub struct Film {
    pub frames: u64,
    pub seconds: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub shown: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// A JPEG of the first photo's clip, at half the film's size.
    pub thumbnail: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilmError {
    #[error("none of the {} photo(s) could be used: {}", .skipped.len(), describe(.skipped))]
    NoUsablePhotos { skipped: Vec<Skipped> },
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

/// The first few skipped photos and why, for an error message.
pub fn describe(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return "there were none".to_owned();
    }
    skipped.iter().take(5).map(|s| format!("{} ({})", s.id, s.reason)).collect::<Vec<_>>().join("; ")
}

/// What the renderer sends the encoder.
enum ToEncoder {
    Frame(Yuv, u64),
    Total(u64),
    Finish(u64),
}

/// A prepared photo from the loader: its index in the spec and its image.
type Loaded = Option<(usize, Yuv)>;

enum Look {
    Still(Yuv),
    Photo { image: Yuv, caption: Overlay, sequence: usize },
}

struct Clip {
    look: Look,
    start: u64,
    frames: u32,
    /// The index of its photo in the spec.
    photo: Option<usize>,
}

impl Clip {
    fn end(&self) -> u64 {
        self.start + u64::from(self.frames)
    }

    fn draw(&self, sampler: &mut Sampler, frame: u64, out: &mut Yuv) {
        match &self.look {
            Look::Still(still) => out.clone_from(still),
            Look::Photo { image, caption, sequence } => {
                let t = (frame - self.start) as f64 / f64::from(self.frames.max(2) - 1);
                sampler.sample(image, ken_burns(*sequence, t, image, out), out);
                caption.apply(out);
            }
        }
    }
}

/// The window of photo number `sequence` at `t` (0 to 1) of its clip: each
/// photo zooms in or out and drifts towards or away from a corner, in turn,
/// so consecutive photos never move alike. The window stays inside the
/// photo by construction.
fn ken_burns(sequence: usize, t: f64, image: &Yuv, frame: &Yuv) -> View {
    let (sw, sh) = (image.width() as f64, image.height() as f64);
    let (w, h) = (frame.width() as f64, frame.height() as f64);
    let widest = (sw / w).min(sh / h).max(1.0);
    let (from_scale, to_scale, from, to) = match sequence % 4 {
        0 => (widest, 1.0, (0.5, 0.5), (0.3, 0.35)),
        1 => (1.0, widest, (0.7, 0.6), (0.5, 0.5)),
        2 => (widest, 1.0, (0.5, 0.5), (0.7, 0.3)),
        _ => (1.0, widest, (0.3, 0.65), (0.5, 0.5)),
    };
    let t = t.clamp(0.0, 1.0);
    let scale = from_scale + (to_scale - from_scale) * t;
    let px = from.0 + (to.0 - from.0) * t;
    let py = from.1 + (to.1 - from.1) * t;
    let (vw, vh) = (w * scale, h * scale);
    View { cx: vw / 2.0 + (sw - vw).max(0.0) * px, cy: vh / 2.0 + (sh - vh).max(0.0) * py, scale }
}

/// Compiles the film into `out` (an MP4 file). On an error or a cancel, what
/// was written to `out` is incomplete and must be thrown away.
pub fn compile(spec: &FilmSpec, source: &dyn PhotoSource, watch: &dyn Watch, out: &Path) -> Result<Film, FilmError> {
    spec.timing.validate().map_err(FilmError::Failed)?;
    let faces = Typefaces::load().map_err(FilmError::Failed)?;
    let (width, height) = spec.aspect.size();
    let (w, h) = (width as usize, height as usize);
    let timing = spec.timing;
    let skipped_count = AtomicUsize::new(0);
    let span = tracing::Span::current();

    thread::scope(|scope| {
        // The loader: one photo per permit.
        let (permits, permit_rx) = mpsc::channel::<()>();
        let (loaded_tx, loaded) = mpsc::sync_channel::<Loaded>(1);
        let loader = scope.spawn(|| {
            // The job's span (id, kind, tenant) on this thread's logs too.
            let _span = span.enter();
            load_photos(spec, source, watch, permit_rx, loaded_tx, &skipped_count, width, height)
        });

        // Nothing is encoded until one photo is known to be usable.
        let _ = permits.send(());
        let first = match receive(&loaded, watch)? {
            Some(first) => first,
            None => {
                drop(permits);
                drop(loaded);
                let skipped = loader.join().map_err(|_| FilmError::Failed("the photo loader stopped".to_owned()))?;
                return Err(FilmError::NoUsablePhotos { skipped });
            }
        };

        let (to_encoder, encoder_rx) = mpsc::sync_channel::<ToEncoder>(1);
        let (recycle, recycled) = mpsc::channel::<Yuv>();
        let encoder = scope.spawn(|| {
            let _span = span.enter();
            encode_frames(out, spec, encoder_rx, recycle)
        });

        let rendered =
            render(spec, &faces, first, &permits, &loaded, &to_encoder, &recycled, watch, &skipped_count, w, h);
        drop(to_encoder);
        drop(permits);
        drop(loaded);
        let encoded = encoder.join().map_err(|_| FilmError::Failed("the encoder thread panicked".to_owned()))?;
        let skipped = loader.join().map_err(|_| FilmError::Failed("the photo loader panicked".to_owned()))?;
        // The encoder's error explains a renderer that stopped early.
        encoded.map_err(FilmError::Failed)?;
        let (frames, shown, thumbnail) = rendered?;
        Ok(Film {
            frames,
            seconds: frames as f64 / f64::from(timing.fps),
            width,
            height,
            fps: timing.fps,
            shown: shown.into_iter().map(|i| spec.photos[i].id.clone()).collect(),
            skipped,
            thumbnail,
        })
    })
}

/// The loader's loop: on each permit, prepares the next photo that can be
/// used, and sends it; sends `None` when there are no more. Returns the
/// photos it skipped.
#[allow(clippy::too_many_arguments)]
fn load_photos(
    spec: &FilmSpec,
    source: &dyn PhotoSource,
    watch: &dyn Watch,
    permits: Receiver<()>,
    loaded: SyncSender<Loaded>,
    skipped_count: &AtomicUsize,
    width: u32,
    height: u32,
) -> Vec<Skipped> {
    let mut skipped = Vec::new();
    let mut next = 0;
    while permits.recv().is_ok() {
        let mut found = None;
        while next < spec.photos.len() && found.is_none() {
            if watch.cancelled() {
                return skipped;
            }
            let index = next;
            next += 1;
            let prepared = source.read(index).and_then(|bytes| prepare_guarded(&bytes, width, height));
            match prepared {
                Ok(image) => found = Some((index, image)),
                Err(reason) => {
                    tracing::info!(photo = %spec.photos[index].id, %reason, "photo skipped");
                    skipped.push(Skipped { id: spec.photos[index].id.clone(), reason });
                    skipped_count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        release_free_memory();
        if loaded.send(found).is_err() {
            break;
        }
    }
    skipped
}

/// Prepares a photo; a panic in a decoder (a bug in a library, met on a
/// hostile file) costs that photo, not the film.
fn prepare_guarded(bytes: &[u8], width: u32, height: u32) -> Result<Yuv, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| photo::prepare(bytes, width, height, ZOOM))) {
        Ok(prepared) => prepared.map_err(|unusable| unusable.0),
        Err(_) => Err("the decoder failed on it".to_owned()),
    }
}

/// The loader's next photo, waiting for it no longer than a cancel allows.
fn receive(loaded: &Receiver<Loaded>, watch: &dyn Watch) -> Result<Loaded, FilmError> {
    loop {
        match loaded.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(photo) => return Ok(photo),
            Err(_) if watch.cancelled() => return Err(FilmError::Cancelled),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(FilmError::Failed("the photo loader stopped".to_owned()))
            }
        }
    }
}

/// Returns the pages that decoding a photo freed to the system. A 12
/// megapixel photo decodes into tens of megabytes that glibc would otherwise
/// keep in the loader thread's arena, and the film's peak memory would creep
/// up with every photo.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[allow(clippy::too_many_arguments)]
fn render(
    spec: &FilmSpec,
    faces: &Typefaces,
    first: (usize, Yuv),
    permits: &mpsc::Sender<()>,
    loaded: &Receiver<Loaded>,
    to_encoder: &SyncSender<ToEncoder>,
    recycled: &Receiver<Yuv>,
    watch: &dyn Watch,
    skipped_count: &AtomicUsize,
    w: usize,
    h: usize,
) -> Result<(u64, Vec<usize>, Vec<u8>), FilmError> {
    let timing = spec.timing;
    let fade = u64::from(timing.fade_frames);
    let mut sampler = Sampler::default();
    let mut scratch = Yuv::filled(w, h, YuvColor::BLACK);
    let mut shown = Vec::new();
    let mut thumbnail = None;

    let photo_clip = |(index, image): (usize, Yuv), start: u64, sequence: usize| {
        let photo = &spec.photos[index];
        Clip {
            look: Look::Photo { image, caption: caption_overlay(faces, &photo.title, &photo.detail, w, h), sequence },
            start,
            frames: timing.photo_frames,
            photo: Some(index),
        }
    };
    let mut current = Clip {
        look: Look::Still(card_frame(faces, &spec.title, w, h)),
        start: 0,
        frames: timing.card_frames,
        photo: None,
    };
    let mut next = Some(photo_clip(first, current.end() - fade, 0));
    let mut more = true;
    let mut ended = false;
    let mut frame: u64 = 0;
    loop {
        if watch.cancelled() {
            return Err(FilmError::Cancelled);
        }
        // The next clip is due: ask the loader for it, or close with the end
        // card.
        if next.is_none() && !ended && frame + fade >= current.end() {
            let loaded_photo = if more { receive(loaded, watch)? } else { None };
            let start = current.end() - fade;
            next = Some(match loaded_photo {
                Some(photo) => photo_clip(photo, start, shown.len() + 1),
                None => {
                    more = false;
                    ended = true;
                    let count = shown.len() + usize::from(current.photo.is_some());
                    let end = Card {
                        lines: spec.end.lines.iter().map(|l| l.replace("{photos}", &count.to_string())).collect(),
                        ..spec.end.clone()
                    };
                    let total = start + u64::from(timing.card_frames);
                    to_encoder.send(ToEncoder::Total(total)).map_err(|_| encoder_gone())?;
                    Clip {
                        look: Look::Still(card_frame(faces, &end, w, h)),
                        start,
                        frames: timing.card_frames,
                        photo: None,
                    }
                }
            });
        }

        let mut out = recycled.try_recv().unwrap_or_else(|_| Yuv::filled(w, h, YuvColor::BLACK));
        current.draw(&mut sampler, frame, &mut out);
        if let Some(incoming) = next.as_ref().filter(|n| frame >= n.start) {
            incoming.draw(&mut sampler, frame, &mut scratch);
            // (i + 1) / (fade + 1): never all of one frame, never all of the
            // other, so the fade has no dead frames at either end.
            let weight = ((frame - incoming.start + 1) * 256 / (fade + 1)) as u16;
            crossfade(&mut out, &scratch, weight);
        }
        if thumbnail.is_none() && current.photo.is_some() && frame == current.start + u64::from(current.frames) / 2 {
            thumbnail = Some(jpeg(&out)?);
        }
        to_encoder.send(ToEncoder::Frame(out, frame)).map_err(|_| encoder_gone())?;
        frame += 1;
        let photos_left = spec.photos.len().saturating_sub(skipped_count.load(Ordering::Relaxed));
        watch.progress(frame, spec.timing.frames(photos_left));

        if frame == current.end() {
            match next.take() {
                Some(clip) => {
                    if let Some(index) = current.photo {
                        shown.push(index);
                    }
                    current = clip;
                    // The clip on screen changed: the one after it may load.
                    if current.photo.is_some() && more {
                        let _ = permits.send(());
                    }
                }
                None => break,
            }
        }
    }
    to_encoder.send(ToEncoder::Finish(frame)).map_err(|_| encoder_gone())?;
    let thumbnail = thumbnail.ok_or_else(|| FilmError::Failed("no frame was drawn for the thumbnail".to_owned()))?;
    Ok((frame, shown, thumbnail))
}

fn encoder_gone() -> FilmError {
    FilmError::Failed("the encoder stopped".to_owned())
}

fn jpeg(frame: &Yuv) -> Result<Vec<u8>, FilmError> {
    let rgb = frame.to_rgb_half();
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&rgb)
        .map_err(|err| FilmError::Failed(format!("cannot write the thumbnail: {err}")))?;
    Ok(bytes)
}

/// The encoder's loop. Finishes the file only on `Finish`: a renderer that
/// stops early leaves it incomplete.
fn encode_frames(
    out: &Path,
    spec: &FilmSpec,
    frames: Receiver<ToEncoder>,
    recycle: mpsc::Sender<Yuv>,
) -> Result<(), String> {
    let (width, height) = spec.aspect.size();
    let mut writer = Mp4Writer::create(out, width, height, spec.timing.fps, &spec.x264, spec.music)?;
    while let Ok(message) = frames.recv() {
        match message {
            ToEncoder::Frame(yuv, index) => {
                writer.push(&yuv, index)?;
                let _ = recycle.send(yuv);
            }
            ToEncoder::Total(total) => writer.set_total_frames(total),
            ToEncoder::Finish(total) => return writer.finish(total),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ken_burns_window_never_leaves_the_photo() {
        let image = Yuv::filled(1296, 2304, YuvColor::BLACK);
        let frame = Yuv::filled(1080, 1920, YuvColor::BLACK);
        for sequence in 0..4 {
            let mut last: Option<View> = None;
            for step in 0..=90 {
                let view = ken_burns(sequence, f64::from(step) / 90.0, &image, &frame);
                let (half_w, half_h) = (1080.0 * view.scale / 2.0, 1920.0 * view.scale / 2.0);
                assert!(view.cx - half_w >= -1e-9 && view.cx + half_w <= 1296.0 + 1e-9, "{sequence} {step} {view:?}");
                assert!(view.cy - half_h >= -1e-9 && view.cy + half_h <= 2304.0 + 1e-9, "{sequence} {step} {view:?}");
                // Smooth: no frame moves the window more than a few pixels.
                if let Some(last) = last {
                    assert!((view.cx - last.cx).abs() < 4.0 && (view.cy - last.cy).abs() < 6.0);
                }
                last = Some(view);
            }
        }
    }
}
