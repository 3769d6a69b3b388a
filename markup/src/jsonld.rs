//! JSON-LD text to JSON values, repairing the sloppiness of real mail.
//!
//! Strict JSON is tried first (the common case costs one parse). When that
//! fails, the text is repaired and read as a stream of JSON values. The
//! repairs, each seen in real confirmation mails (KDE Itinerary collects
//! many of them), are the ones whose intent is unambiguous:
//!
//! - an HTML comment or CDATA wrapper around the block (`<!-- … -->`,
//!   `//<![CDATA[ … //]]>`), byte order marks and zero-width spaces around
//!   it or between tokens, and whitespace JSON does not know (a no-break
//!   space) between tokens;
//! - HTML-entity-escaped JSON (`{&quot;@type&quot;: …}`), decoded when an
//!   escaped quote comes before any plain one; entities inside string
//!   values (`"AT&amp;T"`, `"d&#39;Or"`, `&egrave;`) are decoded after
//!   parsing, in every block (a script's text is never entity-decoded by
//!   HTML, so an entity there is the sender's escaping);
//! - JavaScript comments (`// …`, `/* … */`) outside strings;
//! - trailing commas (`{"a": 1,}`), doubled or leading commas;
//! - missing commas between values inside a container (`[{…}{…}]`,
//!   `{"a": "b" "c": "d"}`);
//! - a key without a value (`"a": ,`, an empty template variable): `null`;
//! - raw newlines, tabs and other control characters inside strings;
//! - several top-level values one after the other (`{…}{…}`, `{…}\n{…}`,
//!   or `{…}, {…}`: an array without its brackets), read as a sequence;
//! - garbage after the value (`};`, tracking JavaScript): ignored;
//! - a JSON document encoded once more as a JSON string.
//!
//! What the stream cannot read is then salvaged (see [`salvage`]): inside
//! the broken value, each array element (and `@graph`) that parses alone is
//! kept. So one broken reservation among good ones, or a block cut off in
//! its last element, costs only what is broken. Unclosed brackets are not
//! closed, single quotes and unquoted keys are not fixed: a value without a
//! whole part yields nothing. Parsing depth is bounded by serde_json's
//! recursion limit (128), so nested input cannot overflow the stack; the
//! repair pass is a flat loop, and the salvage a bounded number of passes.

use serde_json::Value;

/// Every top-level JSON value of one JSON-LD block (usually one object or one
/// array); empty when nothing can be read.
pub(crate) fn parse(text: &str) -> Vec<Value> {
    let text = trim_invisible(text);
    if text.is_empty() {
        return Vec::new();
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return vec![finish(value)];
    }
    let repaired = repair(text);
    let mut values = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(&repaired).into_iter::<Value>();
    let mut stopped = false;
    for value in stream.by_ref() {
        match value {
            Ok(value) => values.push(finish(value)),
            Err(_) => {
                stopped = true;
                break;
            }
        }
    }
    if stopped {
        // `byte_offset` is just past the last value read whole: the broken
        // value starts after it.
        let rest = repaired.get(stream.byte_offset()..).unwrap_or("");
        values.extend(salvage(rest).into_iter().map(finish));
    }
    values
}

/// The text without the whitespace, byte order marks and zero-width
/// characters around it.
fn trim_invisible(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || is_invisible(c))
}

/// Characters that are never JSON and that editors and templates leave
/// around or between tokens: the byte order mark and zero-width spaces.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{feff}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}')
}

/// A parsed value as the normaliser gets it: unwrapped when it was
/// serialised twice, HTML entities decoded in its strings.
fn finish(value: Value) -> Value {
    let mut value = unwrap_string(value);
    decode_string_entities(&mut value, MAX_JSON_DEPTH);
    value
}

/// serde_json's own nesting limit: no parsed value is deeper.
const MAX_JSON_DEPTH: usize = 128;

/// Decodes HTML entities inside string values (`"AT&amp;T"`, `"d&#39;Or"`):
/// a script element's text is not entity-decoded by HTML, so an entity
/// there is always the sender's escaping, never meant literally.
fn decode_string_entities(value: &mut Value, depth: usize) {
    if depth == 0 {
        return;
    }
    match value {
        Value::String(s) if s.contains('&') => *s = decode_entities(s),
        Value::Array(items) => items.iter_mut().for_each(|v| decode_string_entities(v, depth - 1)),
        Value::Object(obj) => obj.values_mut().for_each(|v| decode_string_entities(v, depth - 1)),
        _ => {}
    }
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
    if is_entity_escaped(text) {
        let decoded = decode_entities(text);
        fix_structure(&decoded)
    } else {
        fix_structure(text)
    }
}

/// Whether the JSON's own quotes are written as entities: an escaped quote
/// comes before any plain one. (Entities only inside string values, as in
/// `"name": "The &quot;Grand&quot;"`, are decoded after parsing instead:
/// decoding them here would end the string early.)
fn is_entity_escaped(text: &str) -> bool {
    let entity = ["&quot;", "&#34;", "&#x22;", "&#X22;"].iter().filter_map(|e| text.find(e)).min();
    match (entity, text.find('"')) {
        (Some(entity), Some(plain)) => entity < plain,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Removes `<!-- … -->` and `<![CDATA[ … ]]>` wrappers, also in the
/// `//`-prefixed spelling some templates use.
fn strip_wrappers(mut text: &str) -> &str {
    loop {
        let before = text.len();
        text = trim_invisible(text);
        for open in ["<!--", "<![CDATA[", "//<![CDATA[", "// <![CDATA["] {
            if let Some(rest) = text.strip_prefix(open) {
                text = trim_invisible(rest);
            }
        }
        for close in ["-->", "]]>", "//]]>", "// ]]>"] {
            if let Some(rest) = text.strip_suffix(close) {
                text = trim_invisible(rest);
            }
        }
        for close in ["//", "/*"] {
            // A dangling `//` left by `//-->`.
            if let Some(rest) = text.strip_suffix(close) {
                text = trim_invisible(rest);
            }
        }
        if text.len() == before {
            return text;
        }
    }
}

/// The named entities of U+00A0 to U+00FF, in code point order: the
/// accented letters of Western European mail.
const LATIN1_ENTITIES: [&str; 96] = [
    "nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not", "shy",
    "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil", "sup1", "ordm",
    "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
    "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve",
    "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN",
    "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
    "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
    "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
];

/// Decodes the entities that HTML-escaped JSON uses: the XML five, the
/// Latin-1 names, a few typographic ones, and numeric references. Unknown
/// entities are kept as written.
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
                "euro" => '€',
                "ndash" => '–',
                "mdash" => '—',
                "lsquo" => '‘',
                "rsquo" => '’',
                "ldquo" => '“',
                "rdquo" => '”',
                "hellip" => '…',
                "bull" => '•',
                "trade" => '™',
                _ if LATIN1_ENTITIES.contains(&name) => {
                    let index = LATIN1_ENTITIES.iter().position(|n| *n == name)?;
                    char::from_u32(0xa0 + u32::try_from(index).ok()?)?
                }
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
            ' ' | '\t' | '\n' | '\r' => out.push(c),
            // JSON knows only four whitespace characters; a no-break space
            // or a byte order mark between tokens is just space.
            c if c.is_whitespace() || is_invisible(c) => {
                out.push(' ');
                prev = ' ';
                continue;
            }
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
                // A key without a value (`"a": ,`, an empty template
                // variable) gets `null`. Leading and doubled commas are
                // dropped; the last one of a container is dropped when the
                // container closes. Between top-level values (`{…}, {…}`, an
                // array without its brackets) a comma is dropped too, and
                // the values are read one after the other.
                if last == ':' {
                    out.push_str("null");
                    last = 'l';
                }
                if depth > 0 && !matches!(last, '{' | '[' | ',' | ':' | '\0') {
                    pending_comma = true;
                }
            }
            '}' | ']' => {
                if last == ':' {
                    out.push_str("null");
                }
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

/// Container levels the salvage looks into below a broken value.
const SALVAGE_LEVELS: usize = 8;

/// Containers the salvage records, and so parses alone, at most: each is
/// parsed once, and a container is only tried when its parent failed, so
/// the work stays within a few passes over the text.
const MAX_SALVAGE_SPANS: usize = 4_096;

/// Where a `{…}` or `[…]` of the repaired text starts and ends.
struct Span {
    start: usize,
    /// The closing bracket's position; `None` when the text ends first.
    end: Option<usize>,
    parent: Option<usize>,
    /// Where the normaliser would look for reservations: at the top level,
    /// in an array, or as the value of `@graph`.
    searched: bool,
    is_array: bool,
    /// In an object: the latest key read was `@graph`.
    graph_key: bool,
}

/// What the salvage made of a span.
#[derive(Clone, Copy, PartialEq)]
enum Tried {
    Parsed,
    Failed,
    Skipped,
}

/// The values that stand whole inside a broken value (the text from it to
/// the end): when a container does not parse, each of its elements is
/// tried alone, and so on down. So one broken reservation in an array, or
/// a truncated block, costs only itself; its siblings are read. Only
/// containers where the normaliser looks for reservations are tried (array
/// elements, `@graph` and the top level), so a salvaged value means what it
/// would have meant in the whole document; the property values of a
/// broken object are never read as reservations of their own.
fn salvage(text: &str) -> Vec<Value> {
    let spans = spans(text);
    let mut tried = Vec::with_capacity(spans.len());
    let mut values = Vec::new();
    for span in &spans {
        let parent_failed = span.parent.is_none_or(|p| tried.get(p) == Some(&Tried::Failed));
        let outcome = match span.end {
            _ if !parent_failed || !span.searched => Tried::Skipped,
            None => Tried::Failed,
            Some(end) => match text.get(span.start..=end).map(serde_json::from_str::<Value>) {
                Some(Ok(value)) => {
                    values.push(value);
                    Tried::Parsed
                }
                _ => Tried::Failed,
            },
        };
        tried.push(outcome);
    }
    values
}

/// The containers of the text to [`SALVAGE_LEVELS`] levels, in the order
/// they open, at most [`MAX_SALVAGE_SPANS`]. Brackets inside strings do
/// not count; a closing bracket with nothing open is ignored.
fn spans(text: &str) -> Vec<Span> {
    let bytes = text.as_bytes();
    let mut spans: Vec<Span> = Vec::new();
    // Indices into `spans` of the open containers that are recorded.
    let mut open: Vec<usize> = Vec::new();
    // Open containers below the recorded levels, only counted.
    let mut deeper = 0usize;
    let mut i = 0;
    let mut last_string_is_graph = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let start = i + 1;
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                last_string_is_graph = bytes.get(start..i) == Some(b"@graph".as_slice());
            }
            b':' => {
                if let Some(span) = open.last().and_then(|&o| spans.get_mut(o)) {
                    span.graph_key = !span.is_array && last_string_is_graph;
                }
            }
            b',' => {
                if let Some(span) = open.last().and_then(|&o| spans.get_mut(o)) {
                    span.graph_key = false;
                }
            }
            b'{' | b'[' => {
                if deeper > 0 || open.len() >= SALVAGE_LEVELS || spans.len() >= MAX_SALVAGE_SPANS {
                    deeper += 1;
                } else {
                    let parent = open.last().copied();
                    let searched = match parent.and_then(|p| spans.get(p)) {
                        None => true,
                        Some(parent) => parent.is_array || parent.graph_key,
                    };
                    open.push(spans.len());
                    spans.push(Span { start: i, end: None, parent, searched, is_array: b == b'[', graph_key: false });
                }
            }
            b'}' | b']' => {
                if deeper > 0 {
                    deeper -= 1;
                } else if let Some(o) = open.pop() {
                    if let Some(span) = spans.get_mut(o) {
                        span.end = Some(i);
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    spans
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

    #[test]
    fn byte_order_marks_and_odd_whitespace_around_and_between_tokens() {
        assert_eq!(one("\n \u{feff}{\"a\": 1}"), json!({"a": 1}));
        assert_eq!(one("<![CDATA[\u{feff}\n{\"a\": 1}\n]]>"), json!({"a": 1}));
        assert_eq!(one("{\u{a0}\"a\":\u{a0}1,\u{200b}\"b\": 2}"), json!({"a": 1, "b": 2}));
        // Inside strings they are content.
        assert_eq!(one("{\"a\": \"x\u{a0}y\"}"), json!({"a": "x\u{a0}y"}));
    }

    #[test]
    fn entities_inside_string_values_are_decoded() {
        // Strict JSON, but the sender escaped the values for HTML.
        assert_eq!(
            one(r#"{"a": "AT&amp;T Park", "b": "d&#39;Or", "c": "&lt;b&gt;"}"#),
            json!({"a": "AT&T Park", "b": "d'Or", "c": "<b>"})
        );
        // Escaped quotes only inside a value: decoded after parsing, so the
        // string does not end early (here the JSON also needs a repair).
        assert_eq!(one(r#"{"a": "The &quot;Grand&quot;", "b": 1,}"#), json!({"a": "The \"Grand\"", "b": 1}));
        assert_eq!(one("{&#34;a&#34;: &#34;x&#34;}"), json!({"a": "x"}));
        assert_eq!(one(r#"{"a": "5 & 6 &unknown;"}"#), json!({"a": "5 & 6 &unknown;"}));
        assert_eq!(decode_entities("Gen&egrave;ve &Ccedil;a &yuml; &nbsp;&euro;"), "Genève Ça ÿ \u{a0}€");
    }

    #[test]
    fn is_entity_escaped_looks_at_the_first_quote() {
        assert!(is_entity_escaped("{&quot;a&quot;: 1}"));
        assert!(is_entity_escaped("{&quot;a&quot;: \"b\"}"));
        assert!(!is_entity_escaped(r#"{"a": "&quot;"}"#));
        assert!(!is_entity_escaped(r#"{"a": 1}"#));
    }

    #[test]
    fn top_level_values_separated_by_commas() {
        assert_eq!(parse(r#"{"a": 1}, {"b": 2},"#), vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn a_key_without_a_value_is_null() {
        assert_eq!(one(r#"{"a": , "b": 2}"#), json!({"a": null, "b": 2}));
        assert_eq!(one(r#"{"a": 1, "b": }"#), json!({"a": 1, "b": null}));
    }

    #[test]
    fn trailing_garbage_after_the_value() {
        assert_eq!(one(r#"{"a": 1}; ga('send', 'pageview');"#), json!({"a": 1}));
        // Whole JSON in the garbage is read too, and means nothing more
        // than it would alone.
        assert_eq!(parse(r#"{"a": 1}; window.dataLayer = [];"#), vec![json!({"a": 1}), json!([])]);
        assert_eq!(one(r#"{"a": 1}}}"#), json!({"a": 1}));
        assert_eq!(one(r#"[{"a": 1}] </div> <p>thanks</p>"#), json!([{"a": 1}]));
    }

    #[test]
    fn a_broken_element_costs_only_itself() {
        let text = r#"[{"a": 1}, {"b": 'single quotes'}, {"c": [3]}]"#;
        assert_eq!(parse(text), vec![json!({"a": 1}), json!({"c": [3]})]);
        // In `@graph` too.
        let text = r#"{"@context": "x", "@graph": [{"a": 1}, {b: 2}, {"c": 3}], "x": oops}"#;
        assert_eq!(parse(text), vec![json!({"a": 1}), json!({"c": 3})]);
        // Leading garbage before the value.
        assert_eq!(parse(r#"var booking = {"a": 1};"#), vec![json!({"a": 1})]);
    }

    #[test]
    fn a_truncated_array_keeps_its_whole_elements() {
        let text = r#"[{"a": 1}, {"b": {"c": 2}}, {"d": "#;
        assert_eq!(parse(text), vec![json!({"a": 1}), json!({"b": {"c": 2}})]);
    }

    #[test]
    fn property_values_of_a_broken_object_are_not_salvaged() {
        // The nested reservation is a property of a broken Order: as in a
        // whole document, it is not read on its own.
        let text = r#"{"@type": "Order", "x": 'broken', "reservation": {"@type": "FlightReservation"}}"#;
        assert!(parse(text).is_empty());
        assert_eq!(spans(text).iter().filter(|s| s.searched).count(), 1);
    }

    #[test]
    fn salvage_is_bounded_on_hostile_input() {
        // Many broken elements, each tried once.
        let text = format!("[{}]", "{'x': 1},".repeat(200_000));
        let start = std::time::Instant::now();
        assert!(parse(&text).is_empty());
        // Deep unclosed nesting: only the first levels are recorded.
        let deep = "[{\"a\": ".repeat(100_000);
        assert!(parse(&deep).is_empty());
        assert!(spans(&deep).len() <= SALVAGE_LEVELS);
        // Wide: a million tiny containers, at most MAX_SALVAGE_SPANS tried.
        let wide = format!("[{} 'broken']", "[],".repeat(1_000_000));
        assert!(spans(&wide).len() <= MAX_SALVAGE_SPANS);
        assert!(parse(&wide).len() <= MAX_SALVAGE_SPANS);
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());
    }
}
