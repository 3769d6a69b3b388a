//! `video_compile`: a user's year as a film of their photos, with title
//! cards, crossfades and music.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Kind, PayloadError, ReportLocale, Submitter, PAYLOAD_YEARS};
use crate::model::Lane;

pub struct VideoCompile;

impl Kind for VideoCompile {
    const NAME: &'static str = "video_compile";
    const LANE: Lane = Lane::Video;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);
    type Payload = VideoCompilePayload;

    fn check(payload: &VideoCompilePayload) -> Result<(), PayloadError> {
        if payload.name.as_ref().is_some_and(|name| name.chars().count() > VIDEO_NAME_MAX) {
            return Err(PayloadError::new("payload.name", format!("must be at most {VIDEO_NAME_MAX} characters")));
        }
        if payload.media.as_ref().is_some_and(|media| media.len() > VIDEO_MEDIA_MAX) {
            return Err(PayloadError::new("payload.media", format!("must list at most {VIDEO_MEDIA_MAX} photos")));
        }
        if !PAYLOAD_YEARS.contains(&payload.year) {
            return Err(PayloadError::new(
                "payload.year",
                format!("must be between {} and {}", PAYLOAD_YEARS.start(), PAYLOAD_YEARS.end()),
            ));
        }
        Ok(())
    }

    /// The title card shows the submitter's name when the payload has none,
    /// in their language when longhaul has it.
    fn complete(payload: &mut VideoCompilePayload, submitter: &Submitter) {
        if payload.name.is_none() {
            payload.name = submitter.name.as_ref().map(|name| name.chars().take(VIDEO_NAME_MAX).collect());
        }
        if payload.locale.is_none() {
            payload.locale = submitter.file_locale();
        }
    }
}

/// `video_compile`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoCompilePayload {
    pub year: i32,
    pub aspect: Aspect,
    /// The photos, by media id; the year's photos when absent. An id that
    /// names no photo of the user's is skipped, and the result says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Vec<String>>,
    /// A soundtrack from `assets/music/` by name, or `none`; `daybreak`
    /// when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music: Option<Music>,
    /// The name on the title card. The API fills it from the token's OpenID
    /// `name` claim when the request leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The cards' language: `en` or `pt-BR` (as a report's `locale`); the
    /// submitter's when absent, else the owner's profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<ReportLocale>,
}

/// The shape of a film.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum Aspect {
    /// 9:16, 1080×1920: a phone held upright, stories and reels.
    #[serde(rename = "9:16")]
    Portrait,
    /// 16:9, 1920×1080: a television or a laptop.
    #[serde(rename = "16:9")]
    Landscape,
}

impl Aspect {
    pub fn parse(text: &str) -> Option<Aspect> {
        match text {
            "9:16" => Some(Aspect::Portrait),
            "16:9" => Some(Aspect::Landscape),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Portrait => "9:16",
            Aspect::Landscape => "16:9",
        }
    }

    /// For file names: `9x16`.
    pub fn slug(self) -> &'static str {
        match self {
            Aspect::Portrait => "9x16",
            Aspect::Landscape => "16x9",
        }
    }

    /// Width and height in pixels; both even, as 4:2:0 needs.
    pub fn size(self) -> (u32, u32) {
        match self {
            Aspect::Portrait => (1080, 1920),
            Aspect::Landscape => (1920, 1080),
        }
    }
}

/// A film's soundtrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Music {
    /// `assets/music/daybreak`.
    Daybreak,
    /// Silence.
    None,
}

impl Music {
    /// The track's name under `assets/music/`, if it has one.
    pub fn track(self) -> Option<&'static str> {
        match self {
            Music::Daybreak => Some("daybreak"),
            Music::None => None,
        }
    }
}

/// The longest name a title card shows, in characters.
pub const VIDEO_NAME_MAX: usize = 80;

/// The most photos a video may list.
pub const VIDEO_MEDIA_MAX: usize = 300;
