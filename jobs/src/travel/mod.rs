//! The domain the jobs work on: a user's reservations, grouped into trips.
//!
//! Reservations come from email (`email_poll`), from agencies
//! (`reservation_refresh`) or by hand (the API). Trips are derived: every
//! write regroups the user's confirmed reservations (see [`group_into_trips`]),
//! in the same transaction, so a reservation's `trip_id` is never stale.

use crate::store::{from_row, Columns};
pub mod airports;
pub mod mail;
pub mod refresh;
mod sample;
pub(crate) mod sql;
mod summary;
mod trips;
mod vendors;
pub mod zones;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use sample::{sample_year, SAMPLE_YEAR_JSON};
pub use summary::{Ranked, TripSpan, YearFigures, YearSummary, TOP};
pub use trips::{group_into_trips, places, Member, TripPlan, TRIP_GAP};
pub use vendors::{month_bounds, VendorAnalytics, VendorFigures};
pub use zones::Zone;

use crate::{model::Scope, store::Result};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> std::result::Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!(
                        "unknown value `{other}`; expected one of {}",
                        [$($text),*].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::store::named_columns!($name => stringify!($name));
    };
}
pub(crate) use string_enum;

string_enum!(
    /// What was booked.
    ReservationType {
        Flight = "flight",
        Lodging = "lodging",
        RentalCar = "rental_car",
        Train = "train",
        Bus = "bus",
        Event = "event",
        Food = "food",
    }
);

string_enum!(
    ReservationStatus {
        Confirmed = "confirmed",
        Cancelled = "cancelled",
    }
);

string_enum!(
    /// Where a reservation came from.
    ReservationSource {
        Email = "email",
        Manual = "manual",
        Agency = "agency",
    }
);

/// A booking: a flight leg, a stay, a rental, an event…
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reservation {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub user_id: String,
    #[serde(rename = "type")]
    pub kind: ReservationType,
    pub reservation_number: String,
    /// Who provides it: the airline, hotel, rental company, venue…
    pub provider: String,
    pub status: ReservationStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// The trip it belongs to; none while cancelled.
    pub trip_id: Option<Uuid>,
    /// Its owner chose the trip (`PATCH` with `trip_id`): regrouping keeps
    /// it there until they set `trip_id` back to null.
    pub trip_pinned: bool,
    pub source: ReservationSource,
    /// The schema.org data, as JSON.
    #[schema(value_type = Object)]
    pub details: Value,
    /// Where it takes place (for a flight, train or bus: where it arrives).
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// For a flight: the IATA airport codes it leaves from and arrives at.
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// The time zone where it starts (a flight's departure airport, the
    /// hotel's city): an IANA name, or the offset its email gave when the
    /// place is unknown. None when neither is known (times are then UTC).
    #[schema(value_type = Option<String>, example = "America/Sao_Paulo")]
    pub start_zone: Option<Zone>,
    /// Where it ends (a flight's arrival airport).
    #[schema(value_type = Option<String>, example = "Europe/Lisbon")]
    pub end_zone: Option<Zone>,
    /// `starts_at` as the local time of `start_zone`, with its offset
    /// (`2027-03-14T12:25:00-03:00`): what the ticket says.
    pub starts_local: Option<String>,
    /// `ends_at` in `end_zone`.
    pub ends_local: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Counts its changes: 1 when created, one more for each change (by its
    /// agency, a newer email, or its owner).
    pub version: i64,
    /// When its agency's answer was last written here (a change, or the
    /// first answer); None until then. Checks that found nothing new are
    /// not written (see `GET /v1/admin/sweeps`).
    pub checked_at: Option<DateTime<Utc>>,
}

/// A reservation as a client sends it (the body of `POST /v1/reservations`,
/// an item of the sample year): what [`NewReservation::validate`] makes
/// [`ReservationFields`] of.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReservation {
    #[serde(rename = "type")]
    pub kind: ReservationType,
    pub reservation_number: String,
    /// The airline, hotel, rental company, venue…
    pub provider: String,
    /// `confirmed` when absent.
    pub status: Option<ReservationStatus>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// schema.org data; `{}` when absent.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, such as `PT`.
    pub country: Option<String>,
    /// IATA airport codes, for flights.
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// Where it starts and ends, as an IANA name or an offset; from the
    /// airports (flights) or the city when absent.
    #[schema(value_type = Option<String>)]
    pub start_zone: Option<Zone>,
    #[schema(value_type = Option<String>)]
    pub end_zone: Option<Zone>,
}

impl NewReservation {
    /// The fields, with the defaults of what is absent, validated.
    pub fn validate(self) -> std::result::Result<ReservationFields, InvalidField> {
        ReservationFields {
            kind: self.kind,
            reservation_number: self.reservation_number,
            provider: self.provider,
            status: self.status.unwrap_or(ReservationStatus::Confirmed),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            details: self.details.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            city: self.city,
            country: self.country,
            origin: self.origin,
            destination: self.destination,
            start_zone: self.start_zone,
            end_zone: self.end_zone,
        }
        .validate()
    }
}

/// The fields of a reservation that its owner writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationFields {
    pub kind: ReservationType,
    pub reservation_number: String,
    pub provider: String,
    pub status: ReservationStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub details: Value,
    pub city: Option<String>,
    pub country: Option<String>,
    pub origin: Option<String>,
    pub destination: Option<String>,
    /// Where it starts and ends (see [`Reservation::start_zone`]); filled
    /// from the place by [`ReservationFields::validate`] when none is given.
    pub start_zone: Option<Zone>,
    pub end_zone: Option<Zone>,
}

/// Where a reservation happens, to fill the zones it does not have.
struct Place<'a> {
    kind: ReservationType,
    origin: &'a Option<String>,
    destination: &'a Option<String>,
    city: &'a Option<String>,
}

impl Place<'_> {
    /// `start` and `end`, each filled from the place when none is set (see
    /// [`Zone::of_place`]); an end without a zone of its own is the start's.
    fn fill(&self, start: Option<Zone>, end: Option<Zone>, country: Option<&str>) -> (Option<Zone>, Option<Zone>) {
        if start.is_some() && end.is_some() {
            return (start, end);
        }
        let (from, to) = Zone::of_place(
            self.kind,
            self.origin.as_deref(),
            self.destination.as_deref(),
            self.city.as_deref(),
            country,
        );
        let start = start.or(from);
        (start, end.or(to).or(start))
    }
}

/// A field that does not fit, named for the API's 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidField {
    InvalidField { field, message: message.into() }
}

impl ReservationFields {
    pub const RESERVATION_NUMBER_MAX_CHARS: usize = 128;
    pub const PROVIDER_MAX_CHARS: usize = 200;
    pub const CITY_MAX_CHARS: usize = 200;

    /// Checks what a client could get wrong. Codes are normalised to upper case.
    pub fn validate(mut self) -> std::result::Result<ReservationFields, InvalidField> {
        // Not blank, at most `max` characters as sent, and no control
        // characters once the surrounding whitespace is trimmed.
        let text = |field: &'static str, value: &str, max: usize| {
            let trimmed = value.trim();
            if trimmed.is_empty() {
                Err(invalid(field, "must not be empty"))
            } else if value.chars().count() > max {
                Err(invalid(field, format!("must be at most {max} characters")))
            } else if trimmed.chars().any(char::is_control) {
                Err(invalid(field, "must not contain control characters"))
            } else {
                Ok(trimmed.to_owned())
            }
        };
        self.reservation_number =
            text("reservation_number", &self.reservation_number, Self::RESERVATION_NUMBER_MAX_CHARS)?;
        self.provider = text("provider", &self.provider, Self::PROVIDER_MAX_CHARS)?;
        if let Some(city) = &self.city {
            self.city = Some(text("city", city, Self::CITY_MAX_CHARS)?);
        }
        let code = |field: &'static str, value: &Option<String>, len: usize, what: &str| match value {
            None => Ok(None),
            Some(code) => {
                let code = code.trim().to_ascii_uppercase();
                if code.len() == len && code.bytes().all(|b| b.is_ascii_uppercase()) {
                    Ok(Some(code))
                } else {
                    Err(invalid(field, format!("must be {what}")))
                }
            }
        };
        self.country = code("country", &self.country, 2, "an ISO 3166-1 alpha-2 country code, such as `PT`")?;
        self.origin = code("origin", &self.origin, 3, "an IATA airport code, such as `LIS`")?;
        self.destination = code("destination", &self.destination, 3, "an IATA airport code, such as `GRU`")?;
        if let Some(ends_at) = self.ends_at {
            if ends_at < self.starts_at {
                return Err(invalid("ends_at", "must not be before starts_at"));
            }
        }
        if !self.details.is_object() {
            return Err(invalid("details", "must be a JSON object"));
        }
        Ok(self.placed())
    }

    /// With the zones of where it happens filled in where none is set.
    pub fn placed(mut self) -> ReservationFields {
        let place = Place { kind: self.kind, origin: &self.origin, destination: &self.destination, city: &self.city };
        (self.start_zone, self.end_zone) = place.fill(self.start_zone, self.end_zone, self.country.as_deref());
        self
    }
}

impl Reservation {
    /// The fields its owner writes, as they are now.
    pub fn fields(&self) -> ReservationFields {
        ReservationFields {
            kind: self.kind,
            reservation_number: self.reservation_number.clone(),
            provider: self.provider.clone(),
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            details: self.details.clone(),
            city: self.city.clone(),
            country: self.country.clone(),
            origin: self.origin.clone(),
            destination: self.destination.clone(),
            start_zone: self.start_zone,
            end_zone: self.end_zone,
        }
    }
}

impl ReservationFields {
    /// The fields by name, as they appear in the API.
    fn named(&self) -> [(&'static str, Value); 13] {
        let time = |t: DateTime<Utc>| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::String);
        [
            ("type", self.kind.as_str().into()),
            ("reservation_number", self.reservation_number.clone().into()),
            ("provider", self.provider.clone().into()),
            ("status", self.status.as_str().into()),
            ("starts_at", time(self.starts_at)),
            ("ends_at", self.ends_at.map_or(Value::Null, time)),
            ("details", self.details.clone()),
            ("city", text(&self.city)),
            ("country", text(&self.country)),
            ("origin", text(&self.origin)),
            ("destination", text(&self.destination)),
            ("start_zone", self.start_zone.map_or(Value::Null, |zone| zone.to_string().into())),
            ("end_zone", self.end_zone.map_or(Value::Null, |zone| zone.to_string().into())),
        ]
    }

    /// What differs from `before`, as `{"field": {"from": …, "to": …}}`;
    /// empty when nothing does.
    pub fn changes_from(&self, before: &ReservationFields) -> serde_json::Map<String, Value> {
        before
            .named()
            .into_iter()
            .zip(self.named())
            .filter(|((_, from), (_, to))| from != to)
            .map(|((field, from), (_, to))| (field.to_owned(), serde_json::json!({"from": from, "to": to})))
            .collect()
    }
}

/// Who changed a reservation, and when they say it happened: the history
/// records both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeOrigin {
    pub source: ReservationSource,
    /// When the change happened at its source, if the source says.
    pub changed_at: Option<DateTime<Utc>>,
}

impl ChangeOrigin {
    /// An edit by the reservation's owner, through the API.
    pub const MANUAL: ChangeOrigin = ChangeOrigin { source: ReservationSource::Manual, changed_at: None };

    /// Whether the vendor made the change (seen by the agency sweep, or in a
    /// newer confirmation email), as the vendor analytics count it.
    pub fn is_vendor(self) -> bool {
        matches!(self.source, ReservationSource::Agency | ReservationSource::Email)
    }
}

/// One entry of a reservation's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReservationChange {
    pub id: i64,
    /// Who changed it: `agency` (the refresh sweep), `email` or `manual`.
    pub source: ReservationSource,
    /// Each changed field: `{"field": {"from": …, "to": …}}`.
    #[schema(value_type = Object)]
    pub changes: Value,
    /// When the change happened at its source, if the source says.
    pub changed_at: Option<DateTime<Utc>>,
    /// When longhaul recorded it.
    pub detected_at: DateTime<Utc>,
}

/// A change to a reservation; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReservationPatch {
    pub kind: Option<ReservationType>,
    pub reservation_number: Option<String>,
    pub provider: Option<String>,
    pub status: Option<ReservationStatus>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub details: Option<Value>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub start_zone: Option<Zone>,
    pub end_zone: Option<Zone>,
}

impl ReservationPatch {
    /// The reservation's fields with the patch applied, validated. A patch
    /// that moves the reservation (its type or place) and sets no zone
    /// gives it the zones of its new place.
    pub fn apply(self, to: &Reservation) -> std::result::Result<ReservationFields, InvalidField> {
        let moved = self.kind.is_some()
            || self.city.is_some()
            || self.country.is_some()
            || self.origin.is_some()
            || self.destination.is_some();
        let kept = |zone: Option<Zone>| if moved { None } else { zone };
        ReservationFields {
            kind: self.kind.unwrap_or(to.kind),
            reservation_number: self.reservation_number.unwrap_or_else(|| to.reservation_number.clone()),
            provider: self.provider.unwrap_or_else(|| to.provider.clone()),
            status: self.status.unwrap_or(to.status),
            starts_at: self.starts_at.unwrap_or(to.starts_at),
            ends_at: self.ends_at.or(to.ends_at),
            details: self.details.unwrap_or_else(|| to.details.clone()),
            city: self.city.or_else(|| to.city.clone()),
            country: self.country.or_else(|| to.country.clone()),
            origin: self.origin.or_else(|| to.origin.clone()),
            destination: self.destination.or_else(|| to.destination.clone()),
            start_zone: self.start_zone.or(kept(to.start_zone)),
            end_zone: self.end_zone.or(kept(to.end_zone)),
        }
        .validate()
    }
}

/// What [`TravelStore::move_reservation`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveOutcome {
    Moved(Box<Reservation>),
    /// The scope does not see the reservation.
    NoReservation,
    /// The trip is not one of the reservation owner's.
    NoTrip,
    /// A cancelled reservation belongs to no trip.
    Cancelled,
}

/// Reservations of a user close together in time: one journey.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Trip {
    pub id: Uuid,
    /// "Lisbon, May 2026": where most of it happens, and when it starts.
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reservation_count: i64,
}

/// Filters and page of a reservation list, latest `starts_at` first unless
/// `oldest_first`.
#[derive(Debug, Clone, Default)]
pub struct ReservationFilter {
    pub kind: Option<ReservationType>,
    pub status: Option<ReservationStatus>,
    pub trip_id: Option<Uuid>,
    /// Only reservations starting at or after this.
    pub starts_from: Option<DateTime<Utc>>,
    /// Only reservations starting before this.
    pub starts_before: Option<DateTime<Utc>>,
    /// Earliest `starts_at` first (exports), instead of latest first.
    pub oldest_first: bool,
    /// The last item of the previous page: `(starts_at, id)`.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: u32,
}

/// Reservations and trips, on both databases.
#[async_trait]
pub trait TravelStore: Send + Sync {
    /// Adds reservations for `user_id` and regroups the user's trips once,
    /// all in one transaction. Returns their ids, in order.
    async fn insert_reservations(
        &self,
        tenant_id: &str,
        user_id: &str,
        source: ReservationSource,
        reservations: &[ReservationFields],
    ) -> Result<Vec<Uuid>>;

    /// Adds one reservation for `user_id` and regroups the user's trips.
    async fn insert_reservation(
        &self,
        tenant_id: &str,
        user_id: &str,
        source: ReservationSource,
        fields: ReservationFields,
    ) -> Result<Reservation> {
        let ids = self.insert_reservations(tenant_id, user_id, source, std::slice::from_ref(&fields)).await?;
        let id = ids
            .first()
            .copied()
            .ok_or_else(|| crate::store::StoreError::Corrupt("no reservation was inserted".into()))?;
        let scope = Scope::User { tenant_id: tenant_id.to_owned(), user_id: user_id.to_owned() };
        self.get_reservation(&scope, id)
            .await?
            .ok_or_else(|| crate::store::StoreError::Corrupt(format!("reservation {id} vanished while created")))
    }

    async fn get_reservation(&self, scope: &Scope, id: Uuid) -> Result<Option<Reservation>>;

    async fn list_reservations(&self, scope: &Scope, filter: &ReservationFilter) -> Result<Vec<Reservation>>;

    /// Replaces a reservation's fields, records what changed in its
    /// history (nothing, and no write, when nothing did) and regroups its
    /// user's trips, in one transaction. None when `scope` does not see it.
    async fn update_reservation(
        &self,
        scope: &Scope,
        id: Uuid,
        fields: ReservationFields,
        origin: ChangeOrigin,
    ) -> Result<Option<Reservation>>;

    /// A reservation's history, oldest first. None when `scope` does not
    /// see the reservation.
    async fn reservation_changes(&self, scope: &Scope, id: Uuid) -> Result<Option<Vec<ReservationChange>>>;

    /// Puts a reservation in one of its owner's trips for good (`Some`), or
    /// back under automatic grouping (`None`), and regroups.
    async fn move_reservation(&self, scope: &Scope, id: Uuid, trip: Option<Uuid>) -> Result<MoveOutcome>;

    /// Deletes a reservation and regroups its user's trips. False when
    /// `scope` does not see it.
    async fn delete_reservation(&self, scope: &Scope, id: Uuid) -> Result<bool>;

    /// Trips, latest first; `after` is the last trip of the previous page.
    async fn list_trips(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Trip>>;

    /// One user's year (by `starts_at`), counted by the database: the year
    /// and its months are the user's, in `zone`; a stay's nights are
    /// counted between its local dates.
    async fn year_figures(&self, tenant_id: &str, user_id: &str, year: i32, zone: Zone) -> Result<YearFigures>;

    /// One user's year in figures, in `zone` (see [`TravelStore::year_figures`]).
    async fn year_summary(&self, tenant_id: &str, user_id: &str, year: i32, zone: Zone) -> Result<YearSummary> {
        Ok(YearSummary::assemble(year, zone, self.year_figures(tenant_id, user_id, year, zone).await?))
    }

    /// A tenant's reservations starting in `[from, to)`, per vendor and
    /// type, counted by the database (see [`VendorFigures`]).
    async fn vendor_figures(
        &self,
        tenant_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<VendorFigures>>;

    /// One month (`2026-10`, in UTC) of a tenant's vendors.
    async fn vendor_analytics(&self, tenant_id: &str, month: &str) -> Result<VendorAnalytics> {
        let (from, to) = month_bounds(month)?;
        Ok(VendorAnalytics::assemble(month, self.vendor_figures(tenant_id, from, to).await?))
    }
}

/// The first instant of `year` and of the next, in `zone`.
pub fn year_bounds(year: i32, zone: Zone) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let start = |y: i32| {
        chrono::NaiveDate::from_ymd_opt(y, 1, 1)
            .and_then(|day| zone.instant(day.and_time(chrono::NaiveTime::MIN)))
            .ok_or_else(|| crate::store::StoreError::Config(format!("the year {y} is out of range")))
    };
    Ok((start(year)?, start(year.saturating_add(1))?))
}

/// A reservation as stored. A row written before reservations kept their
/// zones gets its place's.
pub(crate) fn reservation_from_row(row: &impl Columns) -> Result<Reservation> {
    let read = || -> Result<Reservation> {
        from_row!(row => Reservation {
            id, tenant_id, user_id, kind = "type", reservation_number, provider, status, starts_at, ends_at,
            trip_id, trip_pinned, source, details, city, country, origin, destination, start_zone, end_zone,
            starts_local: None, ends_local: None, created_at, updated_at, version, checked_at,
        })
    };
    let mut reservation = read()?;
    let r = &reservation;
    let place = Place { kind: r.kind, origin: &r.origin, destination: &r.destination, city: &r.city };
    (reservation.start_zone, reservation.end_zone) = place.fill(r.start_zone, r.end_zone, r.country.as_deref());
    let local = |zone: Option<Zone>, at: DateTime<Utc>| {
        zone.map(|zone| zone.local(at).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
    };
    reservation.starts_local = local(reservation.start_zone, reservation.starts_at);
    reservation.ends_local = reservation.ends_at.and_then(|at| local(reservation.end_zone, at));
    Ok(reservation)
}
