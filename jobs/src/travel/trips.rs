//! Grouping a user's reservations into trips.
//!
//! A trip is a run of confirmed reservations that overlap in time, or
//! follow each other with no gap longer than [`TRIP_GAP`] (from the end of
//! one, or its start if it has no end, to the start of the next) and share
//! a destination. A reservation's places are where it happens and, for a
//! flight, the cities it leaves from and arrives at. So a day trip to Sintra
//! during a stay in Lisbon, or the train on to Porto on check-out day, stays
//! in the trip (they overlap it); a flight home joins it (it leaves from a
//! city of the trip); but a booking somewhere else two days after a trip
//! ends starts a new one. Where a place is unknown (and for a train or bus,
//! where it leaves from is), time alone decides.
//!
//! Trips are recomputed from scratch on every write, which is simple and
//! always right. Trip ids stay stable: each new group keeps the id most of
//! its reservations already had. A reservation its owner moved to a trip by
//! hand is *pinned*: grouping leaves it in that trip.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::airports::airport;

/// The longest quiet stretch inside one trip.
pub const TRIP_GAP: Duration = Duration::hours(48);

/// A confirmed reservation, as grouping sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Where it happens (for a flight: where it arrives); names the trip.
    pub city: Option<String>,
    /// Every place it touches, folded to lower case (see [`places`]).
    pub places: Vec<String>,
    /// Where it leaves from is not among `places` (a train or bus: only
    /// where it arrives is stored), so time alone can tie it to a trip.
    pub leaves_from_unknown: bool,
    /// The trip it was in before this regrouping.
    pub trip_id: Option<Uuid>,
    /// Its owner put it in `trip_id` by hand.
    pub pinned: bool,
}

/// The places a reservation touches: its city, and for a flight the cities
/// of the airports it leaves from and arrives at.
pub fn places(city: Option<&str>, origin: Option<&str>, destination: Option<&str>) -> Vec<String> {
    let mut places: Vec<String> = Vec::with_capacity(3);
    let airports = [origin, destination].into_iter().flatten().filter_map(airport).map(|a| a.city.as_str());
    for place in city.into_iter().chain(airports) {
        let place = place.trim().to_lowercase();
        if !place.is_empty() && !places.contains(&place) {
            places.push(place);
        }
    }
    places
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

fn end_of(member: &Member) -> DateTime<Utc> {
    member.ends_at.unwrap_or(member.starts_at).max(member.starts_at)
}

/// A trip while it is being built.
struct Group {
    members: Vec<Member>,
    end: DateTime<Utc>,
    places: HashSet<String>,
}

impl Group {
    fn new(member: Member) -> Group {
        let mut group = Group { members: Vec::new(), end: end_of(&member), places: HashSet::new() };
        group.push(member);
        group
    }

    fn push(&mut self, member: Member) {
        self.end = self.end.max(end_of(&member));
        self.places.extend(member.places.iter().cloned());
        self.members.push(member);
    }

    /// How well `member` belongs here, if at all: it must overlap the trip
    /// in time, or follow it within [`TRIP_GAP`] somewhere the trip goes (or
    /// where either place is unknown). Sharing a place scores highest.
    fn fits(&self, member: &Member) -> Option<u8> {
        if member.starts_at > self.end + TRIP_GAP {
            return None;
        }
        let unknown = self.places.is_empty() || member.places.is_empty() || member.leaves_from_unknown;
        let shares = member.places.iter().any(|place| self.places.contains(place));
        let overlaps = member.starts_at < self.end;
        match (shares, unknown || overlaps) {
            (true, _) => Some(2),
            (false, true) => Some(1),
            (false, false) => None,
        }
    }
}

/// Groups `members` into trips, earliest first.
pub fn group_into_trips(members: Vec<Member>) -> Vec<TripPlan> {
    let (pinned, mut free): (Vec<Member>, Vec<Member>) =
        members.into_iter().partition(|m| m.pinned && m.trip_id.is_some());
    free.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
    let mut groups: Vec<Group> = Vec::new();
    for member in free {
        // The best fit wins; the latest of equals.
        let mut best: Option<(usize, u8)> = None;
        for (index, group) in groups.iter().enumerate() {
            if let Some(score) = group.fits(&member) {
                if best.is_none_or(|(_, best_score)| score >= best_score) {
                    best = Some((index, score));
                }
            }
        }
        match best.and_then(|(index, _)| groups.get_mut(index)) {
            Some(group) => group.push(member),
            None => groups.push(Group::new(member)),
        }
    }
    let mut taken = HashSet::new();
    let mut plans: Vec<(Uuid, Vec<Member>)> = groups
        .into_iter()
        .map(|group| {
            let id = previous_trip(&group.members, &taken).unwrap_or_else(Uuid::now_v7);
            taken.insert(id);
            (id, group.members)
        })
        .collect();
    for member in pinned {
        let Some(trip_id) = member.trip_id else { continue };
        match plans.iter_mut().find(|(id, _)| *id == trip_id) {
            Some((_, members)) => members.push(member),
            None => plans.push((trip_id, vec![member])),
        }
    }
    let mut plans: Vec<TripPlan> = plans
        .into_iter()
        .map(|(id, mut group)| {
            group.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
            let starts_at = group.iter().map(|m| m.starts_at).min().unwrap_or_default();
            let ends_at = group.iter().map(end_of).max().unwrap_or(starts_at);
            TripPlan {
                id,
                name: trip_name(&group, starts_at),
                starts_at,
                ends_at,
                members: group.iter().map(|m| m.id).collect(),
            }
        })
        .collect();
    plans.sort_by(|a, b| a.starts_at.cmp(&b.starts_at).then(a.id.cmp(&b.id)));
    plans
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
            places: places(Some(city), None, None),
            leaves_from_unknown: false,
            trip_id,
            pinned: false,
        }
    }

    #[test]
    fn reservations_close_in_time_make_one_trip_and_a_long_gap_starts_another() {
        let plans = group_into_trips(vec![
            flight(1, "OPO", "LIS"),
            member(1, Some(5), "Lisbon", None),
            flight(6, "LIS", "OPO"),
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
        let plans = group_into_trips(vec![member(1, Some(15), "Lisbon", None), member(14, None, "Lisbon", None)]);
        assert_eq!(plans.len(), 1);
    }

    fn flight(day: u32, from: &str, to: &str) -> Member {
        let mut flight = member(day, None, "", None);
        flight.places = places(None, Some(from), Some(to));
        flight.city = airport(to).map(|a| a.city.clone());
        flight
    }

    #[test]
    fn a_booking_elsewhere_just_after_a_trip_starts_another_and_overlaps_stay_together() {
        let plans = group_into_trips(vec![
            member(1, Some(4), "Madrid", None),
            // Overlaps the Madrid stay: a day trip of the same journey.
            member(2, None, "Toledo", None),
            // The day after it ends, somewhere else: another trip…
            member(5, Some(6), "Porto", None),
            // …and back in Madrid the day after: the Madrid trip again.
            member(5, None, "Madrid", None),
        ]);
        assert_eq!(plans.len(), 2);
        assert_eq!((plans[0].name.as_str(), plans[0].members.len()), ("Madrid, May 2026", 3));
        assert_eq!((plans[1].name.as_str(), plans[1].members.len()), ("Porto, May 2026", 1));
    }

    #[test]
    fn a_bus_home_joins_the_trip_it_leaves_from() {
        let mut bus = member(5, None, "São Paulo", None);
        bus.leaves_from_unknown = true;
        let plans = group_into_trips(vec![member(2, Some(4), "Rio de Janeiro", None), bus]);
        assert_eq!(plans.len(), 1);
    }

    #[test]
    fn a_reservation_with_no_known_place_goes_by_time_alone() {
        let mut unknown = member(2, None, "", None);
        unknown.places.clear();
        unknown.city = None;
        let plans = group_into_trips(vec![member(1, Some(3), "Rome", None), unknown]);
        assert_eq!(plans.len(), 1);
    }

    #[test]
    fn a_pinned_reservation_stays_in_the_trip_its_owner_chose() {
        let lisbon = group_into_trips(vec![member(1, Some(3), "Lisbon", None)]);
        let rome = group_into_trips(vec![member(20, Some(22), "Rome", None)]);
        let (lisbon_trip, rome_trip) = (lisbon[0].id, rome[0].id);
        let mut moved = member(2, None, "Lisbon", Some(rome_trip));
        moved.pinned = true;
        let plans = group_into_trips(vec![
            member(1, Some(3), "Lisbon", Some(lisbon_trip)),
            member(20, Some(22), "Rome", Some(rome_trip)),
            moved.clone(),
        ]);
        assert_eq!(plans.len(), 2);
        let rome = plans.iter().find(|p| p.id == rome_trip).expect("the Rome trip");
        assert!(rome.members.contains(&moved.id));
        // The trip now spans what was moved into it.
        assert_eq!(rome.starts_at, moved.starts_at);
        // Pinned to a trip that has nothing else: the trip lives on.
        moved.trip_id = Some(Uuid::now_v7());
        let plans = group_into_trips(vec![member(1, Some(3), "Lisbon", None), moved.clone()]);
        assert_eq!(plans.len(), 2);
        assert!(plans.iter().any(|p| Some(p.id) == moved.trip_id && p.members == vec![moved.id]));
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
