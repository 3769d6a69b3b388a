//! Grouping a user's reservations into trips.
//!
//! A trip is a run of confirmed reservations with no gap longer than
//! [`TRIP_GAP`] between the end of one (its start, if it has no end) and the
//! start of the next. It is recomputed from scratch on every write, which is
//! simple and always right; trip ids stay stable because each new group
//! keeps the id most of its reservations already had.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// The longest quiet stretch inside one trip.
pub const TRIP_GAP: Duration = Duration::hours(48);

/// A confirmed reservation, as grouping sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub city: Option<String>,
    /// The trip it was in before this regrouping.
    pub trip_id: Option<Uuid>,
}

/// One trip and its reservations.
#[derive(Debug, Clone, PartialEq)]
pub struct TripPlan {
    pub id: Uuid,
    pub name: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub members: Vec<Uuid>,
}

/// Groups `members` into trips, earliest first.
pub fn group_into_trips(mut members: Vec<Member>) -> Vec<TripPlan> {
    members.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
    let mut groups: Vec<Vec<Member>> = Vec::new();
    let mut group_end: Option<DateTime<Utc>> = None;
    for member in members {
        let end = member.ends_at.unwrap_or(member.starts_at).max(member.starts_at);
        match (groups.last_mut(), group_end) {
            (Some(group), Some(current)) if member.starts_at <= current + TRIP_GAP => {
                group.push(member);
                group_end = Some(current.max(end));
            }
            _ => {
                groups.push(vec![member]);
                group_end = Some(end);
            }
        }
    }
    let mut taken = HashSet::new();
    groups
        .into_iter()
        .map(|group| {
            let starts_at = group.iter().map(|m| m.starts_at).min().unwrap_or_default();
            let ends_at =
                group.iter().map(|m| m.ends_at.unwrap_or(m.starts_at).max(m.starts_at)).max().unwrap_or(starts_at);
            let id = previous_trip(&group, &taken).unwrap_or_else(Uuid::now_v7);
            taken.insert(id);
            TripPlan {
                id,
                name: trip_name(&group, starts_at),
                starts_at,
                ends_at,
                members: group.iter().map(|m| m.id).collect(),
            }
        })
        .collect()
}

/// The trip id most of the group already had, unless an earlier group took it.
fn previous_trip(group: &[Member], taken: &HashSet<Uuid>) -> Option<Uuid> {
    let mut votes: HashMap<Uuid, usize> = HashMap::new();
    for id in group.iter().filter_map(|m| m.trip_id) {
        *votes.entry(id).or_default() += 1;
    }
    votes
        .into_iter()
        .filter(|(id, _)| !taken.contains(id))
        // Most votes, then the smallest id: the same data, the same answer.
        .max_by(|(a, va), (b, vb)| va.cmp(vb).then(b.cmp(a)))
        .map(|(id, _)| id)
}

/// "Lisbon, May 2026": the city most of the trip's reservations name (the
/// first of them on a tie), and the month it starts.
fn trip_name(group: &[Member], starts_at: DateTime<Utc>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for city in group.iter().filter_map(|m| m.city.as_deref()) {
        match counts.iter_mut().find(|(name, _)| *name == city) {
            Some((_, n)) => *n += 1,
            None => counts.push((city, 1)),
        }
    }
    let best = counts.iter().fold(None::<(&str, usize)>, |best, &(city, n)| match best {
        Some((_, most)) if most >= n => best,
        _ => Some((city, n)),
    });
    let month = starts_at.format("%B %Y");
    match best {
        Some((city, _)) => format!("{city}, {month}"),
        None => format!("Trip, {month}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, day, hour, 0, 0).single().expect("a valid date")
    }

    fn member(day: u32, end_day: Option<u32>, city: &str, trip_id: Option<Uuid>) -> Member {
        Member {
            id: Uuid::now_v7(),
            starts_at: at(day, 9),
            ends_at: end_day.map(|d| at(d, 11)),
            city: Some(city.into()),
            trip_id,
        }
    }

    #[test]
    fn reservations_close_in_time_make_one_trip_and_a_long_gap_starts_another() {
        let plans = group_into_trips(vec![
            member(1, None, "Lisbon", None),
            member(1, Some(5), "Lisbon", None),
            member(6, None, "Porto", None),
            member(20, Some(22), "Madrid", None),
        ]);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].members.len(), 3);
        assert_eq!(plans[0].name, "Lisbon, May 2026");
        assert_eq!((plans[0].starts_at, plans[0].ends_at), (at(1, 9), at(6, 9)));
        assert_eq!(plans[1].name, "Madrid, May 2026");
    }

    #[test]
    fn a_long_stay_holds_its_trip_open_until_it_ends() {
        let plans = group_into_trips(vec![member(1, Some(15), "Lisbon", None), member(14, None, "Sintra", None)]);
        assert_eq!(plans.len(), 1);
    }

    #[test]
    fn trips_keep_their_ids_when_reservations_come_and_go() {
        let trip = Uuid::now_v7();
        let plans = group_into_trips(vec![
            member(1, None, "Lisbon", Some(trip)),
            member(2, None, "Lisbon", Some(trip)),
            member(3, None, "Lisbon", None),
        ]);
        assert_eq!(plans[0].id, trip);
        // Split in two: the larger part keeps the id, the other gets a new one.
        let plans = group_into_trips(vec![
            member(1, None, "Lisbon", Some(trip)),
            member(2, None, "Lisbon", Some(trip)),
            member(20, None, "Rome", Some(trip)),
        ]);
        assert_eq!(plans[0].id, trip);
        assert_ne!(plans[1].id, trip);
    }

    #[test]
    fn no_reservations_no_trips() {
        assert!(group_into_trips(Vec::new()).is_empty());
    }
}
