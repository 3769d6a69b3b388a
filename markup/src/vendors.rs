//! One name per vendor, whatever the email or import file calls it.
//!
//! `LATAM`, `Latam Airlines Group` and `LATAM AIRLINES` are one airline, and
//! the vendor report, the trips and the dedupe keys should say so. The table
//! (`assets/vendors/vendors.csv`, written for longhaul, see its README) lists
//! each vendor's canonical name, its aliases and, for airlines, its
//! designators; it is built into the binary and parsed once, on first use.
//!
//! Matching is exact on a folded form of the name: lower case, accents
//! removed, `&` read as `and`, everything but letters and digits dropped. So
//! `Hilton Hotels & Resorts` and `hilton hotels and resorts` are one alias,
//! but `Hilton Lisbon` is not `Hilton`: a property keeps its own name, and
//! no prefix or fuzzy match guesses at what the table does not say.
//! Designators (`LA`, `TAM`) are matched only by [`canonical_airline`],
//! where the value is known to name an airline: as a bare word, `AA` or `DB`
//! could be anything.

use std::{borrow::Cow, collections::HashMap, sync::OnceLock};

const VENDORS_CSV: &str = include_str!("../../assets/vendors/vendors.csv");

/// The parsed table: folded names and upper-case designators to canonical
/// names.
struct Table {
    names: HashMap<String, &'static str>,
    codes: HashMap<String, &'static str>,
}

/// One vendor line of the table: canonical name, kind, designators,
/// aliases. `None` for comments, blank lines, the header and malformed
/// lines (the table is ours and a test checks it; a bad line is skipped
/// rather than taking the process down).
fn entry(line: &'static str) -> Option<(&'static str, &'static str, &'static str, &'static str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with("canonical,") {
        return None;
    }
    let mut cells = line.split(',').map(str::trim);
    let (canonical, kind, codes, aliases) = (cells.next()?, cells.next()?, cells.next()?, cells.next()?);
    (cells.next().is_none() && !canonical.is_empty()).then_some((canonical, kind, codes, aliases))
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table { names: HashMap::new(), codes: HashMap::new() };
        for (canonical, _kind, codes, aliases) in VENDORS_CSV.lines().filter_map(entry) {
            for name in std::iter::once(canonical).chain(aliases.split('|')) {
                let key = fold(name);
                if !key.is_empty() {
                    table.names.entry(key).or_insert(canonical);
                }
            }
            for code in codes.split('|').map(str::trim).filter(|c| !c.is_empty()) {
                table.codes.entry(code.to_ascii_uppercase()).or_insert(canonical);
            }
        }
        table
    })
}

/// The vendor's canonical name when `name` is one of the table's names or
/// aliases; otherwise `name` trimmed, with each run of whitespace made one
/// space, and nothing else changed.
pub fn canonical_provider(name: &str) -> Cow<'_, str> {
    match table().names.get(&fold(name)) {
        Some(canonical) => Cow::Borrowed(canonical),
        None => collapse_whitespace(name),
    }
}

/// As [`canonical_provider`], for a value known to name an airline: an
/// airline designator (`LA`, `TAM`; any case) also gives its airline.
pub fn canonical_airline(name_or_code: &str) -> Cow<'_, str> {
    let trimmed = name_or_code.trim();
    let is_code = (2..=3).contains(&trimmed.len()) && trimmed.bytes().all(|b| b.is_ascii_alphanumeric());
    if is_code {
        if let Some(canonical) = table().codes.get(&trimmed.to_ascii_uppercase()) {
            return Cow::Borrowed(canonical);
        }
    }
    canonical_provider(name_or_code)
}

/// `name` trimmed, each run of whitespace one space; borrowed when that
/// changes nothing.
fn collapse_whitespace(name: &str) -> Cow<'_, str> {
    let trimmed = name.trim();
    let mut previous_space = false;
    let clean = trimmed.chars().all(|c| {
        let ok = !(c.is_whitespace() && (c != ' ' || previous_space));
        previous_space = c == ' ';
        ok
    });
    if clean {
        return Cow::Borrowed(trimmed);
    }
    Cow::Owned(trimmed.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The form names are compared in: lower case, Latin accents removed,
/// `&` as `and`, only letters and digits kept (`São Paulo` and `sao
/// paulo` are `saopaulo`). Vendors' names here, cities' in the zones.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            '&' => out.push_str("and"),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            c if c.is_alphanumeric() => out.push(strip_accent(c)),
            _ => {}
        }
    }
    out
}

/// The base letter of an accented Latin letter; any other character as it
/// is.
fn strip_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' | 'đ' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ğ' => 'g',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => 'i',
        'ł' | 'ľ' => 'l',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ş' => 's',
        'ť' | 'ţ' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_line_of_the_table_is_well_formed() {
        let kinds = ["airline", "hotel", "car_rental", "rail", "bus", "agency"];
        let mut vendors = 0;
        for line in VENDORS_CSV.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("canonical,") {
                continue;
            }
            let (canonical, kind, codes, _) = entry(line).unwrap_or_else(|| panic!("malformed line {line:?}"));
            assert!(kinds.contains(&kind), "{canonical}: kind {kind:?}");
            assert_eq!(canonical, canonical.trim());
            assert!(codes.is_empty() || kind == "airline", "{canonical}: only airlines have designators");
            for code in codes.split('|').filter(|c| !c.is_empty()) {
                assert!(
                    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                    "{canonical}: designator {code:?}"
                );
            }
            vendors += 1;
        }
        assert!((40..=100).contains(&vendors), "{vendors} vendors");
    }

    #[test]
    fn no_alias_or_designator_names_two_vendors() {
        let mut names: HashMap<String, &str> = HashMap::new();
        let mut codes: HashMap<&str, &str> = HashMap::new();
        let mut canonicals = HashSet::new();
        for (canonical, _, line_codes, aliases) in VENDORS_CSV.lines().filter_map(entry) {
            assert!(canonicals.insert(canonical), "{canonical} listed twice");
            for name in std::iter::once(canonical).chain(aliases.split('|').filter(|a| !a.trim().is_empty())) {
                let key = fold(name);
                assert!(!key.is_empty(), "{canonical}: alias {name:?} folds to nothing");
                if let Some(other) = names.insert(key, canonical) {
                    assert_eq!(other, canonical, "{name:?} names both {other} and {canonical}");
                }
            }
            for code in line_codes.split('|').filter(|c| !c.is_empty()) {
                assert_eq!(codes.insert(code, canonical), None, "designator {code} twice");
            }
        }
    }

    #[test]
    fn latam_spellings_are_one_airline() {
        for spelling in
            ["LATAM", "Latam Airlines Group", "LATAM AIRLINES", "latam airlines", " LATAM  Airlines ", "L.A.T.A.M."]
        {
            assert_eq!(canonical_provider(spelling), "LATAM Airlines", "{spelling:?}");
        }
        for code in ["LA", "la", " LA ", "JJ", "TAM"] {
            assert_eq!(canonical_airline(code), "LATAM Airlines", "{code:?}");
        }
    }

    #[test]
    fn designators_count_only_for_airlines() {
        assert_eq!(canonical_provider("LA"), "LA");
        for (given, airline) in [
            ("UA", "United Airlines"),
            ("United", "United Airlines"),
            ("ZZ", "ZZ"),
            ("Atlantica Airways", "Atlantica Airways"),
        ] {
            assert_eq!(canonical_airline(given), airline, "{given:?}");
        }
    }

    #[test]
    fn case_spacing_punctuation_accents_and_ampersands_do_not_matter() {
        let table = [
            ("hilton hotels and resorts", "Hilton"),
            ("Hilton Hotels & Resorts", "Hilton"),
            ("enterprise rent a car", "Enterprise"),
            ("Österreichische Bundesbahnen", "ÖBB"),
            ("OBB", "ÖBB"),
            ("Aerolineas Argentinas", "Aerolíneas Argentinas"),
            ("DEUTSCHE BAHN AG", "Deutsche Bahn"),
            ("flixbus", "FlixBus"),
        ];
        provides(&table);
    }

    /// Each name's canonical provider is the one given.
    fn provides(table: &[(&str, &str)]) {
        for (given, expected) in table {
            assert_eq!(canonical_provider(given), *expected, "{given:?}");
        }
    }

    #[test]
    fn unknown_names_are_trimmed_and_collapsed_only() {
        assert!(matches!(canonical_provider(" Casa do Rio "), Cow::Borrowed("Casa do Rio")));
        let table = [
            ("  Hotel   Infante\tSagres \n", "Hotel Infante Sagres"),
            ("Hilton Lisbon", "Hilton Lisbon"),
            ("Comboios de Portugal, CP", "Comboios de Portugal, CP"),
            ("hôtel lumière", "hôtel lumière"),
            ("", ""),
            ("   ", ""),
            ("!!!", "!!!"),
        ];
        provides(&table);
    }
}
