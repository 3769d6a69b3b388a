//! The page size, cursor and id filter parameters of the list endpoints:
//! one rule for all of them, and the OpenAPI schemas that state it, side by
//! side so that the document cannot drift from what the server accepts.
//!
//! `limit` is a whole number from 1. Above the endpoint's most it is clamped
//! rather than refused (a page is for a screen, not an export, and a client
//! that asks for more simply gets the most), so the schema has a `minimum`
//! and no `maximum`. A cursor is opaque, but its shape is known: the
//! base64url (no padding) of a fixed number of bytes, which the schema gives
//! as a pattern. An empty cursor or id filter counts as absent (what a form
//! with blank fields sends), so their patterns allow the empty string; an
//! empty `limit` is not a number, and is refused.

use utoipa::openapi::{
    schema::{AnyOf, Type},
    Object, ObjectBuilder, Ref, Schema,
};

use crate::problem::Problem;

/// A list endpoint's page sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageSize {
    pub default: u32,
    pub max: u32,
}

/// Jobs, reservations, trips and photos.
pub(crate) const ITEMS: PageSize = PageSize { default: 50, max: 200 };
/// Reservation sweeps: a day of 5-minute sweeps at most.
pub(crate) const SWEEPS: PageSize = PageSize { default: 20, max: 288 };
/// The audit log.
pub(crate) const AUDIT: PageSize = PageSize { default: 100, max: longhaul_jobs::admin::MAX_AUDIT_PAGE };

impl PageSize {
    /// `?limit=` read by the rule above: absent is the default; a number
    /// over `u32` is as good as the most.
    pub(crate) fn limit(self, raw: Option<&str>) -> Result<u32, Problem> {
        let Some(raw) = raw else { return Ok(self.default) };
        if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_digit()) || raw.bytes().all(|byte| byte == b'0') {
            return Err(Problem::invalid_field(
                "limit",
                format!("must be a whole number from 1 (pages hold at most {})", self.max),
            ));
        }
        Ok(raw.parse::<u32>().unwrap_or(u32::MAX).min(self.max))
    }

    fn schema(self) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .default(Some(self.default.into()))
            .description(Some(format!(
                "Items per page, from 1; {} by default. Larger values are clamped to {}.",
                self.default, self.max
            )))
            .build()
    }
}

/// The `limit` parameter of the item lists.
pub(crate) fn items_limit_schema() -> Object {
    ITEMS.schema()
}

/// The `limit` parameter of the sweep list.
pub(crate) fn sweeps_limit_schema() -> Object {
    SWEEPS.schema()
}

/// The `limit` parameter of the audit log.
pub(crate) fn audit_limit_schema() -> Object {
    AUDIT.schema()
}

fn cursor_schema(pattern: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(
            "The `next_cursor` of the previous page, as it was given; empty or absent for the first page",
        ))
        .build()
}

/// A job list cursor: 16 bytes (a job id), so 22 characters whose last
/// carries 2 bits.
pub(crate) fn job_cursor_schema() -> Object {
    cursor_schema("^([A-Za-z0-9_-]{21}[AQgw])?$")
}

/// A cursor of the lists ordered by time: 24 bytes (a timestamp and an
/// id), so 32 characters.
pub(crate) fn time_cursor_schema() -> Object {
    cursor_schema("^([A-Za-z0-9_-]{32})?$")
}

/// A filter by one of a component's values, or empty for none.
fn enum_filter(component: &str) -> Schema {
    let mut any_of = AnyOf::new();
    any_of.items = vec![
        Ref::from_schema_name(component).into(),
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some([""])).into(),
    ];
    Schema::AnyOf(any_of)
}

pub(crate) fn status_filter_schema() -> Schema {
    enum_filter("Status")
}

pub(crate) fn kind_filter_schema() -> Schema {
    enum_filter("JobKind")
}

pub(crate) fn reservation_type_filter_schema() -> Schema {
    enum_filter("ReservationType")
}

pub(crate) fn reservation_status_filter_schema() -> Schema {
    enum_filter("ReservationStatus")
}

/// A filter by id: a UUID in its hyphenated form, or empty for none.
pub(crate) fn id_filter_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?$"))
        .build()
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    use super::*;

    #[test]
    fn limits_are_whole_numbers_from_one_clamped_to_the_most() {
        assert_eq!(ITEMS.limit(None).ok(), Some(50));
        assert_eq!(ITEMS.limit(Some("1")).ok(), Some(1));
        assert_eq!(ITEMS.limit(Some("201")).ok(), Some(200));
        assert_eq!(ITEMS.limit(Some("99999999999999999999999")).ok(), Some(200));
        assert_eq!(AUDIT.limit(Some("300")).ok(), Some(300));
        for bad in ["", " 5", "0", "000", "-1", "1.5", "ten", "\u{3}"] {
            assert!(ITEMS.limit(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_cursor_patterns_match_the_cursors_the_api_makes_and_no_others() {
        let pattern = |schema: Object| regex::Regex::new(&schema.pattern.unwrap_or_default());
        let (Ok(job), Ok(time)) = (pattern(job_cursor_schema()), pattern(time_cursor_schema())) else {
            panic!("a cursor pattern that does not compile");
        };
        for id in [[0u8; 16], [0xff; 16], *uuid::Uuid::now_v7().as_bytes()] {
            let cursor = URL_SAFE_NO_PAD.encode(id);
            assert!(job.is_match(&cursor), "{cursor}");
            assert!(crate::views::decode_cursor(&cursor).is_some());
        }
        for bytes in [[0u8; 24], [0xab; 24], [0xff; 24]] {
            assert!(time.is_match(&URL_SAFE_NO_PAD.encode(bytes)));
        }
        assert!(job.is_match("") && time.is_match(""));
        // 22 characters whose last carries bits a 16-byte value does not have.
        assert!(!job.is_match("AAAAAAAAAAAAAAAAAAAAAB"));
        assert!(crate::views::decode_cursor("AAAAAAAAAAAAAAAAAAAAAB").is_none());
        assert!(!time.is_match(&URL_SAFE_NO_PAD.encode([0u8; 16])));
        assert!(!job.is_match("É") && !time.is_match("É"));
    }
}
