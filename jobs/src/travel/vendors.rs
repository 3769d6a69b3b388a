//! A month of a tenant's vendors: what the `vendor_analytics` report shows.
//!
//! The month is the reservations' `starts_at`, in UTC: "October" is the
//! travel that happens in October. For each vendor (the `provider` of a
//! reservation) and type, the database counts the reservations, the
//! cancelled ones, and the vendor's changes from the reservations' history.
//! A vendor's changes are those seen by the agency sweep or in a newer
//! confirmation email; a user's own edits are not the vendor's doing and are
//! left out. Each reservation keeps the count of its vendor changes
//! (`vendor_changes`), written with its history in one transaction, so the
//! month is one `GROUP BY` over the month's reservations: the history, which
//! only grows, is never scanned. The database returns one row per vendor and
//! type, so a month of a million reservations costs the memory of its
//! vendor list.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ReservationType;
use crate::store::{Result, StoreError};

/// One vendor's reservations of one type in the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VendorFigures {
    pub vendor: String,
    #[serde(rename = "type")]
    pub kind: ReservationType,
    /// Reservations starting in the month, cancelled ones included.
    pub reservations: i64,
    /// Of those, the ones cancelled now.
    pub cancelled: i64,
    /// Of those, the ones the vendor changed at least once.
    pub changed: i64,
    /// The vendor's changes to them, in all.
    pub changes: i64,
}

/// A month of a tenant's vendors, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VendorAnalytics {
    /// `2026-10`.
    pub month: String,
    pub vendors: i64,
    pub reservations: i64,
    pub cancelled: i64,
    pub changed: i64,
    pub changes: i64,
    /// Most reservations first; then by vendor and type.
    pub rows: Vec<VendorFigures>,
}

impl VendorAnalytics {
    pub fn assemble(month: &str, mut rows: Vec<VendorFigures>) -> VendorAnalytics {
        // Sorted here, not by the database: collations differ between
        // backends, and the same data must give the same bytes.
        rows.sort_by(|a, b| {
            b.reservations.cmp(&a.reservations).then_with(|| a.vendor.cmp(&b.vendor)).then_with(|| a.kind.cmp(&b.kind))
        });
        let mut vendors: Vec<&str> = rows.iter().map(|row| row.vendor.as_str()).collect();
        vendors.sort_unstable();
        vendors.dedup();
        let total = |field: fn(&VendorFigures) -> i64| rows.iter().map(field).sum();
        VendorAnalytics {
            month: month.to_owned(),
            vendors: vendors.len() as i64,
            reservations: total(|row| row.reservations),
            cancelled: total(|row| row.cancelled),
            changed: total(|row| row.changed),
            changes: total(|row| row.changes),
            rows,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reservations == 0
    }
}

/// The first instant of `month` (`2026-10`) and of the next, in UTC.
pub fn month_bounds(month: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let bad = || StoreError::Config(format!("`{month}` is not a month such as 2026-10"));
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    let next = first.checked_add_months(chrono::Months::new(1)).ok_or_else(bad)?;
    let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    Ok((midnight(first)?, midnight(next)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vendor: &str, kind: ReservationType, reservations: i64, cancelled: i64, changes: i64) -> VendorFigures {
        VendorFigures {
            vendor: vendor.into(),
            kind,
            reservations,
            cancelled,
            changed: changes.min(reservations),
            changes,
        }
    }

    #[test]
    fn a_month_is_its_utc_calendar_month() {
        let (from, to) = month_bounds("2026-12").unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let (from, to) = month_bounds("2028-02").unwrap();
        assert_eq!((to - from).num_days(), 29);
        for bad in ["2026-13", "2026", "October", "2026-10-01", ""] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_are_ordered_by_size_then_name_and_totalled() {
        use ReservationType::*;
        let analytics = VendorAnalytics::assemble(
            "2026-10",
            vec![
                row("b-air", Flight, 3, 1, 2),
                row("Azul", Flight, 5, 0, 0),
                row("a-hotel", Lodging, 3, 0, 4),
                row("a-hotel", Food, 3, 1, 0),
            ],
        );
        let order: Vec<(&str, ReservationType)> =
            analytics.rows.iter().map(|row| (row.vendor.as_str(), row.kind)).collect();
        assert_eq!(order, [("Azul", Flight), ("a-hotel", Lodging), ("a-hotel", Food), ("b-air", Flight)]);
        assert_eq!(
            (analytics.vendors, analytics.reservations, analytics.cancelled, analytics.changed, analytics.changes),
            (3, 14, 2, 5, 6)
        );
        assert!(!analytics.is_empty());
        assert!(VendorAnalytics::assemble("2026-10", Vec::new()).is_empty());
    }
}
