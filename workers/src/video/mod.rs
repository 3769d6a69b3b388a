//! The video engine behind `video_compile`: photos in, an MP4 film and a
//! thumbnail out. It knows nothing of jobs or stores; the kind gathers the
//! photos and captions, and the bench drives it from a directory.
//!
//! - [`plan`]: frame sizes, timing and encoder settings (pure arithmetic);
//! - [`photo`]: decode, orient, flatten and pre-scale one photo;
//! - [`raster`]: YUV 4:2:0 frames, the sub-pixel Ken Burns sampler, the
//!   crossfade and overlays;
//! - [`text`]: cards and captions;
//! - [`encode`]: libav (libx264, AAC, MP4 with faststart);
//! - [`film`]: the three-thread pipeline that ties them together.

pub mod encode;
pub mod film;
pub mod photo;
pub mod plan;
pub mod raster;
pub mod text;

pub use film::{compile, Film, FilmError, FilmSpec, PhotoSource, PhotoSpec, Skipped, Watch};
pub use plan::{Aspect, Timing, X264};
pub use text::Card;

/// The soundtracks that ship in `assets/music/`, by the name a payload's
/// `music` gives.
pub fn music(name: &str) -> Option<&'static [u8]> {
    match name {
        "daybreak" => Some(include_bytes!("../../../assets/music/daybreak.m4a")),
        _ => None,
    }
}
