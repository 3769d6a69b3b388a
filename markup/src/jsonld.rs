//! JSON-LD text to JSON values, repairing the sloppiness of real mail.
//!
//! Strict JSON is tried first (the common case costs one parse). When that
//! fails, the text is repaired and read as a stream of JSON values, keeping
//! every value that parses up to the first that does not ("the valid part").
//! The repairs, each seen in real confirmation mails (KDE Itinerary collects
//! many of them):
//!
//! - an HTML comment or CDATA wrapper around the block (`<!-- … -->`);
//! - HTML-entity-escaped JSON (`{&quot;@type&quot;: …}`), decoded when the
//!   text contains `&quot;`;
//! - JavaScript comments (`// …`, `/* … */`) outside strings;
//! - trailing commas (`{"a": 1,}`), doubled or leading commas;
//! - missing commas between values inside a container (`[{…}{…}]`,
//!   `{"a": "b" "c": "d"}`);
//! - raw newlines, tabs and other control characters inside strings;
//! - several top-level values one after the other (`{…}{…}` or
//!   `{…}\n{…}`), read as a sequence;
//! - a JSON document encoded once more as a JSON string.
//!
//! What is not repaired (unclosed brackets, single quotes, unquoted keys)
//! yields nothing. Parsing depth is bounded by serde_json's recursion limit
//! (128), so nested input cannot overflow the stack; the repair pass itself
//! is a flat loop.

use serde_json::Value;

/// Every top-level JSON value of one JSON-LD block (usually one object or one
/// array); empty when nothing can be read.
pub(crate) fn parse(text: &str) -> Vec<Value> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Vec::new();
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return vec![unwrap_string(value)];
    }
    let repaired = repair(text);
    let mut values = Vec::new();
    for value in serde_json::Deserializer::from_str(&repaired).into_iter::<Value>() {
        match value {
            Ok(value) => values.push(unwrap_string(value)),
            Err(_) => break,
        }
    }
    values
}

/// A JSON string whose content is itself a JSON object or array (JSON-LD
/// serialised twice) stands for that content.
fn unwrap_string(value: Value) -> Value {
    if let Value::String(s) = &value {
        let inner = s.trim();
        if inner.starts_with('{') || inner.starts_with('[') {
            if let Ok(parsed) = serde_json::from_str::<Value>(inner) {
                return parsed;
            }
        }
    }
    value
}

/// Applies every repair; the result is meant for a streaming JSON parse.
fn repair(text: &str) -> String {
    let text = strip_wrappers(text);
    if text.contains("&quot;") {
        let decoded = decode_entities(text);
        fix_structure(&decoded)
    } else {
        fix_structure(text)
    }
}

/// Removes `<!-- … -->` and `<![CDATA[ … ]]>` wrappers, also in the
/// `//`-prefixed spelling some templates use.
fn strip_wrappers(mut text: &str) -> &str {
    loop {
        let before = text.len();
        text = text.trim();
        for open in ["<!--", "<![CDATA[", "//<![CDATA[", "// <![CDATA["] {
            if let Some(rest) = text.strip_prefix(open) {
                text = rest.trim_start();
            }
        }
        for close in ["-->", "]]>", "//]]>", "// ]]>"] {
            if let Some(rest) = text.strip_suffix(close) {
                text = rest.trim_end();
            }
        }
        for close in ["//", "/*"] {
            // A dangling `//` left by `//-->`.
            if let Some(rest) = text.strip_suffix(close) {
                text = rest.trim_end();
            }
        }
        if text.len() == before {
            return text;
        }
    }
}

/// Decodes the few entities that HTML-escaped JSON uses. Unknown entities
/// are kept as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        rest = rest.get(amp..).unwrap_or("");
        let decoded = rest.bytes().take(12).position(|b| b == b';').and_then(|semi| {
            let name = rest.get(1..semi)?;
            let ch = match name {
                "quot" => '"',
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "apos" => '\'',
                "nbsp" => '\u{a0}',
                _ => {
                    let code = if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                        u32::from_str_radix(hex, 16).ok()?
                    } else {
                        name.strip_prefix('#')?.parse::<u32>().ok()?
                    };
                    char::from_u32(code)?
                }
            };
            Some((ch, semi + 1))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = rest.get(len..).unwrap_or("");
            }
            None => {
                out.push('&');
                rest = rest.get(1..).unwrap_or("");
            }
        }
    }
    out.push_str(rest);
    out
}

/// One pass over the text, outside and inside strings, fixing commas,
/// comments and control characters. It never needs to look back more than
/// one character, so it is linear and cannot recurse.
fn fix_structure(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    let mut escaped = false;
    // Nesting of `{` / `[` outside strings; commas are only inserted inside.
    let mut depth: usize = 0;
    // The last significant character written outside a string (a closing
    // quote counts as `"`).
    let mut last: char = '\0';
    // The character just before the current one, outside strings,
    // whitespace included: tells a token's continuation from a new token.
    let mut prev: char = '\0';
    // A comma was read and will be written only if a value follows.
    let mut pending_comma = false;

    while let Some(c) = chars.next() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    last = '"';
                    prev = '"';
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
            continue;
        }
        match c {
            c if c.is_whitespace() => out.push(c),
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for c in chars.by_ref() {
                    if star && c == '/' {
                        break;
                    }
                    star = c == '*';
                }
                out.push(' ');
            }
            ',' => {
                // Leading and doubled commas are dropped; the last one of a
                // container is dropped when the container closes.
                if !matches!(last, '{' | '[' | ',' | ':' | '\0') {
                    pending_comma = true;
                }
            }
            '}' | ']' => {
                pending_comma = false;
                depth = depth.saturating_sub(1);
                last = c;
                out.push(c);
            }
            c => {
                // A new value right after another one, inside a container,
                // lacks its comma; but `1` then `2` in `12` (or `t`, `r` in
                // `true`) are one token, not two values.
                let same_token = is_literal_char(c) && is_literal_char(prev);
                let starts_value = matches!(c, '"' | '{' | '[') || c.is_ascii_alphanumeric() || c == '-';
                let after_value = matches!(last, '"' | '}' | ']') || last.is_ascii_alphanumeric();
                if pending_comma || (depth > 0 && starts_value && after_value && !same_token) {
                    out.push(',');
                }
                pending_comma = false;
                match c {
                    '"' => in_string = true,
                    '{' | '[' => depth += 1,
                    _ => {}
                }
                last = c;
                out.push(c);
            }
        }
        prev = c;
    }
    out
}

/// Characters that continue a number or a `true`/`false`/`null` literal.
fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(text: &str) -> Value {
        let mut values = parse(text);
        assert_eq!(values.len(), 1, "{text:?} gave {values:?}");
        values.remove(0)
    }

    #[test]
    fn strict_json() {
        assert_eq!(one(r#"{"a": [1, 2.5, -3e2, true, null, "x"]}"#), json!({"a": [1, 2.5, -3e2, true, null, "x"]}));
    }

    #[test]
    fn trailing_and_doubled_commas() {
        assert_eq!(one(r#"{"a": 1, "b": [1, 2,], }"#), json!({"a": 1, "b": [1, 2]}));
        assert_eq!(one(r#"{"a": 1,, "b": 2}"#), json!({"a": 1, "b": 2}));
        assert_eq!(one("[,1]"), json!([1]));
        // The Eventbrite shape: a comma before a closing brace on a new line.
        assert_eq!(one("{\n \"a\": \"x\",\n   }"), json!({"a": "x"}));
    }

    #[test]
    fn comments_and_wrappers() {
        let text = "<!--\n{\n // a comment\n \"a\": \"http://schema.org\", /* block */ \"b\": 2\n}\n-->";
        assert_eq!(one(text), json!({"a": "http://schema.org", "b": 2}));
        assert_eq!(one("//<![CDATA[\n{\"a\": 1}\n//]]>"), json!({"a": 1}));
        assert_eq!(one("<!-- {\"a\": 1} //-->"), json!({"a": 1}));
    }

    #[test]
    fn entity_escaped() {
        let text =
            "{&quot;@type&quot;: &quot;FlightReservation&quot;, &quot;x&quot;: &quot;a &amp; b &#233;&#x41;&quot;}";
        assert_eq!(one(text), json!({"@type": "FlightReservation", "x": "a & b éA"}));
        assert_eq!(decode_entities("&unknown; & &#xZZ; &#99999999;"), "&unknown; & &#xZZ; &#99999999;");
    }

    #[test]
    fn raw_control_characters_in_strings() {
        assert_eq!(one("{\"a\": \"line 1\nline 2\tend\u{1}\"}"), json!({"a": "line 1\nline 2\tend\u{1}"}));
    }

    #[test]
    fn missing_commas() {
        assert_eq!(one(r#"[{"a": 1}{"b": 2}]"#), json!([{"a": 1}, {"b": 2}]));
        assert_eq!(
            one(r#"[{"a": 1}
            {"b": 2}]"#),
            json!([{"a": 1}, {"b": 2}])
        );
        assert_eq!(one(r#"{"a": "b" "c": "d"}"#), json!({"a": "b", "c": "d"}));
        assert_eq!(one(r#"{"a": 1 "c": true "d": null}"#), json!({"a": 1, "c": true, "d": null}));
    }

    #[test]
    fn several_top_level_values() {
        assert_eq!(parse(r#"{"a": 1}{"b": 2}"#), vec![json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(parse("{\"a\": 1}\n{\"b\": 2,}"), vec![json!({"a": 1}), json!({"b": 2})]);
        // The valid prefix survives a broken tail.
        assert_eq!(parse(r#"{"a": 1} {"b": "#), vec![json!({"a": 1})]);
    }

    #[test]
    fn double_encoded() {
        assert_eq!(one(r#""{\"a\": 1}""#), json!({"a": 1}));
        assert_eq!(one(r#""just text""#), json!("just text"));
    }

    #[test]
    fn unrepairable_gives_nothing() {
        for text in ["", "   ", "{", "{\"a\": ", "{'a': 1}", "{a: 1}", "not json", "]]]", "\"unterminated"] {
            assert!(parse(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(parse(&deep).is_empty());
        let deep = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);
        assert!(parse(&deep).is_empty());
    }
}
