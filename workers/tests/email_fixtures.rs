//! The sample-email corpus (`tests/fixtures/email`) through the same parse
//! and extraction a poll runs on the parts it fetches: every message gives
//! exactly the reservations `expected.json` lists, the same booking in other
//! markup or another email gives the same identity, and nothing panics.
//!
//! Times are as the poll stores them: a time written without an offset is
//! the wall clock of where it happens (the airport, the city), so its UTC
//! instant depends on the place; `start_zone` / `end_zone` say which zone
//! that was.

use std::{collections::HashMap, path::PathBuf};

use longhaul_jobs::travel::mail::FoundReservation;
use longhaul_workers::kinds::email_poll::message::extract_message;
use serde_json::Value;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/email")
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(corpus().join("expected.json")).expect("expected.json");
    match serde_json::from_str(&text).expect("valid JSON") {
        Value::Object(map) => map,
        other => panic!("expected.json is not an object: {other}"),
    }
}

/// A found reservation as `expected.json` names its fields.
fn as_json(found: &FoundReservation) -> serde_json::Map<String, Value> {
    let f = &found.fields;
    let time = |t: chrono::DateTime<chrono::Utc>| Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::String);
    serde_json::Map::from_iter([
        ("type".to_owned(), Value::String(f.kind.as_str().into())),
        ("reservation_number".to_owned(), Value::String(f.reservation_number.clone())),
        ("provider".to_owned(), Value::String(f.provider.clone())),
        ("status".to_owned(), Value::String(f.status.as_str().into())),
        ("starts_at".to_owned(), time(f.starts_at)),
        ("ends_at".to_owned(), f.ends_at.map_or(Value::Null, time)),
        ("origin".to_owned(), text(&f.origin)),
        ("destination".to_owned(), text(&f.destination)),
        ("city".to_owned(), text(&f.city)),
        ("country".to_owned(), text(&f.country)),
        ("start_zone".to_owned(), f.start_zone.map_or(Value::Null, |zone| Value::String(zone.to_string()))),
        ("end_zone".to_owned(), f.end_zone.map_or(Value::Null, |zone| Value::String(zone.to_string()))),
    ])
}

#[test]
fn every_fixture_gives_exactly_the_expected_reservations() {
    let expected = expected();
    let mut found_by_file: HashMap<String, Vec<FoundReservation>> = HashMap::new();
    let mut failures = Vec::new();
    for (file, entry) in expected.iter().filter(|(file, _)| file.ends_with(".eml")) {
        let raw = std::fs::read(corpus().join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
        let (_, found) = extract_message(&raw);
        let wanted = entry["reservations"].as_array().cloned().unwrap_or_default();
        if found.len() != wanted.len() {
            failures.push(format!("{file}: found {} reservations, expected {}", found.len(), wanted.len()));
        }
        for (index, (got, want)) in found.iter().zip(&wanted).enumerate() {
            let got = as_json(got);
            for (field, value) in want.as_object().into_iter().flatten() {
                // The poll fills a flight's city from its airport; the corpus
                // states only what the markup says.
                let is_flight = got.get("type") == Some(&Value::String("flight".into()));
                if (field == "city" || field == "country") && value.is_null() && is_flight {
                    continue;
                }
                if got.get(field) != Some(value) {
                    failures.push(format!("{file}[{index}].{field}: got {:?}, expected {value}", got.get(field)));
                }
            }
        }
        found_by_file.insert(file.clone(), found);
    }
    for group in expected.get("dedupe_groups").and_then(Value::as_array).into_iter().flatten() {
        let keys: Vec<Option<&str>> = group
            .as_array()
            .into_iter()
            .flatten()
            .map(|member| {
                let file = member["file"].as_str().unwrap_or_default();
                let index = member["index"].as_u64().unwrap_or(0) as usize;
                found_by_file.get(file).and_then(|found| found.get(index)).map(|f| f.dedupe_key.as_str())
            })
            .collect();
        if keys.iter().any(Option::is_none) || keys.windows(2).any(|pair| pair[0] != pair[1]) {
            failures.push(format!("dedupe group {group} has keys {keys:?}"));
        }
    }
    let all_keys: Vec<&str> = found_by_file.values().flatten().map(|f| f.dedupe_key.as_str()).collect();
    assert!(all_keys.iter().all(|key| !key.is_empty()));
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
