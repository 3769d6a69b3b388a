//! A single linear pass over the raw HTML that finds what needs no DOM.
//!
//! It follows the HTML tokenizer closely enough for this job: comments,
//! bogus comments and doctypes are skipped, tags and their attributes are
//! read with the spec's quoting rules, and the content of raw-text elements
//! (`script`, `style`, `textarea`, `title`, `noscript`, …) is never mistaken
//! for markup. From that it takes:
//!
//! - the raw text of every `<script type="application/ld+json">` (type
//!   compared case-insensitively, parameters after `;` ignored), which is all
//!   JSON-LD needs, so most reservation emails are read without building a
//!   DOM at all;
//! - the byte ranges of the top-level microdata items (`itemscope`, no
//!   `itemprop`) whose `itemtype` names a reservation type: only those parts
//!   of the email are parsed into a DOM (see [`Region`]);
//! - an estimate of the work html5ever's tree builder would do. Its stack
//!   scans make deeply nested or badly misnested input quadratic (40,000
//!   nested `<div>`s take seconds, a few MiB take hours), so the estimate,
//!   modelled on a simplified open-element stack, decides whether the DOM is
//!   built at all ([`crate::MAX_TREE_WORK`]).

use std::ops::Range;

use crate::schema;
use crate::MAX_TREE_WORK;

/// What the scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan<'a> {
    /// The raw content of each JSON-LD script, in document order.
    pub json_ld: Vec<&'a str>,
    /// The parts of the document holding reservation microdata, in order.
    pub regions: Vec<Region>,
    /// A reservation item is the `html`, `head` or `body` element, which a
    /// fragment cannot reproduce: parse the whole document instead.
    pub needs_document: bool,
    /// The estimated tree-building work went over [`MAX_TREE_WORK`].
    pub too_complex: bool,
}

/// A part of the document holding one top-level reservation item (with any
/// top-level items nested in it, and the property items that follow it as
/// siblings, which the microdata reader attaches to it).
///
/// A region runs from the item's start tag to the end tag that closes it,
/// found by counting start and end tags of the item's own name. That can
/// overshoot what the HTML tree builder would do (a `<p>` closed early by a
/// `<div>`), which only adds content, and it agrees with the tree builder
/// where sloppy HTML misnests other elements inside the item. Parsed as a
/// fragment, a region gives the same microdata as the whole document, for a
/// fraction of the cost: the markup is usually a few KiB of a much larger
/// email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Region {
    pub range: Range<usize>,
    /// Markup to put before the region so that table parts (`<tr>`, `<td>`
    /// items) are parsed in a table, as they are in the document.
    pub context: &'static str,
}

/// Tracks the region being read.
#[derive(Default)]
struct Regions {
    done: Vec<Region>,
    /// The open region: its start, context, element name hash, and how many
    /// elements of that name are open in it.
    open: Option<(usize, &'static str, u64, usize)>,
    /// The latest region ended, and no top-level item has started since: a
    /// property item starting at `depth` (a sibling of the item) now
    /// extends it.
    extendable: bool,
    /// Depth of the open-element model at the latest region's item.
    depth: usize,
    needs_document: bool,
}

impl Regions {
    /// A start tag at `lt`, opened at `depth` of the open-element model.
    fn start_tag(&mut self, tag: &Tag<'_>, lt: usize, class: Class, depth: usize) {
        if let Some((_, _, name, count)) = &mut self.open {
            if *name == hash_name(tag.name) && class != Class::Void {
                *count += 1;
            }
            return;
        }
        if !tag.itemscope {
            return;
        }
        let (start, context) = if !tag.itemprop {
            self.extendable = false;
            if !tag.itemtype.is_some_and(names_reservation) {
                return;
            }
            let context = fragment_context(tag.name).unwrap_or_else(|| {
                self.needs_document = true;
                ""
            });
            self.depth = depth;
            (lt, context)
        } else if self.extendable && depth == self.depth {
            match self.done.pop() {
                Some(region) => (region.range.start, region.context),
                None => return,
            }
        } else {
            return;
        };
        if class == Class::Void {
            self.done.push(Region { range: start..tag.end, context });
            self.extendable = true;
        } else {
            self.open = Some((start, context, hash_name(tag.name), 1));
        }
    }

    /// An end tag ending at `end`, after which the open-element model is at
    /// `depth`.
    fn end_tag(&mut self, name: &[u8], end: usize, depth: usize) {
        if depth < self.depth {
            // The item's parent is closed: no more siblings.
            self.extendable = false;
        }
        if let Some((start, context, open_name, count)) = &mut self.open {
            if *open_name == hash_name(name) {
                *count -= 1;
                if *count == 0 {
                    self.done.push(Region { range: *start..end, context });
                    self.open = None;
                    self.extendable = true;
                }
            }
        }
    }

    fn finish(mut self, len: usize) -> (Vec<Region>, bool) {
        if let Some((start, context, _, _)) = self.open.take() {
            self.done.push(Region { range: start..len, context });
        }
        (self.done, self.needs_document)
    }
}

/// What must precede an item element of this name for a fragment parse to
/// see it as the document does; `None` for elements a fragment cannot hold.
fn fragment_context(name: &[u8]) -> Option<&'static str> {
    let mut buf = [0u8; 8];
    let Some(lower) = buf.get_mut(..name.len()) else { return Some("") };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    match &*lower {
        b"html" | b"head" | b"body" | b"frameset" => None,
        b"td" | b"th" => Some("<table><tbody><tr>"),
        b"tr" => Some("<table><tbody>"),
        b"tbody" | b"thead" | b"tfoot" | b"caption" | b"colgroup" => Some("<table>"),
        b"col" => Some("<table><colgroup>"),
        _ => Some(""),
    }
}

/// Scans `html`. The tree-work estimate is only kept when `model_tree` is
/// set (there is microdata to look for).
pub(crate) fn scan(html: &str, model_tree: bool) -> Scan<'_> {
    let bytes = html.as_bytes();
    let mut found = Scan::default();
    let mut tree = TreeModel { enabled: model_tree, ..TreeModel::default() };
    let mut regions = Regions::default();
    let mut i = 0;
    while let Some(lt) = find_byte(html, i, b'<') {
        i = lt;
        match bytes.get(i + 1) {
            Some(b'!') => i = skip_markup_declaration(html, i),
            Some(b'?') => i = skip_past(html, i + 2, b'>'),
            Some(b'/') => match bytes.get(i + 2) {
                Some(c) if c.is_ascii_alphabetic() => {
                    let Some(tag) = read_tag(html, i + 2) else { break };
                    tree.end(tag.name);
                    regions.end_tag(tag.name, tag.end, tree.stack.len());
                    i = tag.end;
                }
                Some(b'>') => i += 3,
                Some(_) => i = skip_past(html, i + 2, b'>'),
                None => break,
            },
            Some(c) if c.is_ascii_alphabetic() => {
                let Some(tag) = read_tag(html, i + 1) else { break };
                let class = classify(tag.name);
                regions.start_tag(&tag, lt, class, tree.stack.len());
                tree.start(tag.name, class, tag.self_closing);
                i = tag.end;
                match class {
                    Class::Plaintext => break,
                    Class::RawText => {
                        let end = if tag.name.eq_ignore_ascii_case(b"script") {
                            script_end(html, i)
                        } else {
                            find_end_tag(html, i, tag.name)
                        };
                        if tag.name.eq_ignore_ascii_case(b"script") && tag.script_type.is_some_and(is_json_ld_type) {
                            if let Some(content) = html.get(i..end) {
                                found.json_ld.push(content);
                            }
                        }
                        i = end;
                    }
                    _ => {}
                }
            }
            _ => i += 1,
        }
    }
    found.too_complex = tree.over;
    (found.regions, found.needs_document) = regions.finish(html.len());
    found
}

/// `application/ld+json`, any case, surrounding space and parameters
/// (`; charset=utf-8`) allowed.
fn is_json_ld_type(value: &[u8]) -> bool {
    let essence = value.split(|&b| b == b';').next().unwrap_or(value);
    essence.trim_ascii().eq_ignore_ascii_case(b"application/ld+json")
}

/// An `itemtype` attribute naming at least one reservation type. Values with
/// character references cannot be judged here; the DOM will decode them.
fn names_reservation(value: &[u8]) -> bool {
    if value.contains(&b'&') {
        return true;
    }
    let Ok(value) = std::str::from_utf8(value) else { return false };
    value.split_ascii_whitespace().any(|t| schema::kind_of_type(t).is_some())
}

/// The next `byte` at or after `from`: eight bytes at a time (the classic
/// "word has a zero byte" test on `word ^ pattern`), which matters here since
/// most of an HTML email is attribute values and text skipped this way. The
/// standard library's `str::find` is as fast on long spans but pays a setup
/// cost on the short ones that dominate.
fn find_byte(text: &str, from: usize, byte: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let hay = text.as_bytes().get(from..)?;
    let pattern = LOW.wrapping_mul(u64::from(byte));
    let mut chunks = hay.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // Borrows only flag bytes above a real zero byte, so the lowest flag
        // is the first match.
        let zero = x.wrapping_sub(LOW) & !x & HIGH;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&b| b == byte).map(|p| p + offset)
}

/// The next occurrence of the ASCII `needle` at or after `from`; for the
/// long spans of comments and raw text, where the standard library's
/// substring search pays off. Positions this module produces follow an ASCII
/// byte, so they are character boundaries; the byte loop is a fallback.
fn find_seq(text: &str, from: usize, needle: &str) -> Option<usize> {
    match text.get(from..) {
        Some(rest) => rest.find(needle).map(|p| p + from),
        None => {
            let bytes = text.as_bytes();
            let needle = needle.as_bytes();
            (from..bytes.len()).find(|&p| bytes.get(p..p + needle.len()) == Some(needle))
        }
    }
}

/// Index just after the next `byte` at or after `from`, or the end.
fn skip_past(text: &str, from: usize, byte: u8) -> usize {
    find_byte(text, from, byte).map_or(text.len(), |p| p + 1)
}

/// `<!` at `lt`: a comment (`<!-- … -->`, also the abrupt `<!-->` and the
/// `--!>` ending) or a bogus comment such as a doctype, up to `>`.
fn skip_markup_declaration(text: &str, lt: usize) -> usize {
    let bytes = text.as_bytes();
    if bytes.get(lt + 2..lt + 4) != Some(b"--") {
        return skip_past(text, lt + 2, b'>');
    }
    let body = lt + 4;
    match bytes.get(body..) {
        Some([b'>', ..]) => return body + 1,
        Some([b'-', b'>', ..]) => return body + 2,
        _ => {}
    }
    // Each `--` is looked at once, so a document of many comments stays
    // linear.
    let mut i = body;
    while let Some(p) = find_seq(text, i, "--") {
        match bytes.get(p + 2..) {
            Some([b'>', ..]) => return p + 3,
            Some([b'!', b'>', ..]) => return p + 4,
            _ => i = p + 1,
        }
    }
    bytes.len()
}

/// The start of the end tag closing a raw-text element named `name`, at or
/// after `from` (`</name` followed by whitespace, `/` or `>`), or the end of
/// the input when it is never closed.
fn find_end_tag(text: &str, from: usize, name: &[u8]) -> usize {
    let bytes = text.as_bytes();
    let mut i = from;
    while let Some(p) = find_seq(text, i, "</") {
        let name_start = p + 2;
        let after = name_start + name.len();
        let matches = bytes.get(name_start..after).is_some_and(|n| n.eq_ignore_ascii_case(name));
        if matches && bytes.get(after).is_none_or(|&b| is_tag_delimiter(b)) {
            return p;
        }
        i = p + 2;
    }
    bytes.len()
}

/// Whether `word` (ASCII, lower case) is at `at`, any case, followed by a
/// tag delimiter or the end of the input.
fn word_at(bytes: &[u8], at: usize, word: &[u8]) -> bool {
    bytes.get(at..at + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
        && bytes.get(at + word.len()).is_none_or(|&b| is_tag_delimiter(b))
}

/// The end of a `<script>`'s content, following the tokenizer's script
/// states: inside `<!--` a `<script` opens a "double-escaped" section in
/// which `</script>` does not end the element, only that section; `-->`
/// returns to the plain state.
fn script_end(text: &str, from: usize) -> usize {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Plain,
        Escaped,
        DoubleEscaped,
    }
    let bytes = text.as_bytes();
    let mut state = State::Plain;
    let mut i = from;
    // The next `-->` at or after `i`, once looked for (`Some(None)`: there
    // is none), so that a script of many `<` is not searched to its end for
    // each of them.
    let mut next_close: Option<Option<usize>> = None;
    loop {
        let lt = find_byte(text, i, b'<');
        let close = if state == State::Plain {
            None
        } else {
            match next_close {
                Some(Some(c)) if c >= i => Some(c),
                Some(None) => None,
                _ => {
                    let c = find_seq(text, i, "-->");
                    next_close = Some(c);
                    c
                }
            }
        };
        let (at, is_lt) = match (lt, close) {
            (Some(l), Some(c)) if c < l => (c, false),
            (Some(l), _) => (l, true),
            (None, Some(c)) => (c, false),
            (None, None) => return bytes.len(),
        };
        if !is_lt {
            state = State::Plain;
            i = at + 3;
            continue;
        }
        let slash = bytes.get(at + 1) == Some(&b'/');
        match state {
            State::Plain | State::Escaped if slash && word_at(bytes, at + 2, b"script") => return at,
            State::DoubleEscaped if slash && word_at(bytes, at + 2, b"script") => {
                state = State::Escaped;
                i = at + 8;
            }
            State::Plain if bytes.get(at + 1..at + 4) == Some(b"!--") => {
                state = State::Escaped;
                // `<!--` may be followed directly by more dashes and `>`
                // (`<!-->`, `<!--->`), which ends the escape at once.
                i = at + 4;
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'>') {
                    state = State::Plain;
                    i += 1;
                }
            }
            State::Escaped if !slash && word_at(bytes, at + 1, b"script") => {
                state = State::DoubleEscaped;
                i = at + 7;
            }
            _ => i = at + 1,
        }
    }
}

fn is_tag_delimiter(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'/' | b'>')
}

/// The attributes this scan cares about, from one tag.
struct Tag<'a> {
    name: &'a [u8],
    /// Index just after the tag's `>`.
    end: usize,
    self_closing: bool,
    script_type: Option<&'a [u8]>,
    itemscope: bool,
    itemprop: bool,
    itemtype: Option<&'a [u8]>,
}

/// Reads a tag whose name starts at `start`; `None` when the input ends
/// inside the tag (the tokenizer then drops it).
fn read_tag(text: &str, start: usize) -> Option<Tag<'_>> {
    let bytes = text.as_bytes();
    let mut i = start;
    while bytes.get(i).is_some_and(|&b| !is_tag_delimiter(b)) {
        i += 1;
    }
    let mut tag = Tag {
        name: bytes.get(start..i)?,
        end: 0,
        self_closing: false,
        script_type: None,
        itemscope: false,
        itemprop: false,
        itemtype: None,
    };
    // The first occurrence of an attribute wins, as in the tokenizer.
    let mut seen_type = false;
    loop {
        // Between attributes: whitespace, and `/` unless it ends the tag.
        loop {
            match bytes.get(i)? {
                b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' => i += 1,
                b'/' => {
                    if bytes.get(i + 1) == Some(&b'>') {
                        tag.self_closing = true;
                        tag.end = i + 2;
                        return Some(tag);
                    }
                    i += 1;
                }
                _ => break,
            }
        }
        if bytes.get(i) == Some(&b'>') {
            tag.end = i + 1;
            return Some(tag);
        }
        // Attribute name; a leading `=` belongs to it.
        let name_start = i;
        i += 1;
        while bytes.get(i).is_some_and(|&b| !is_tag_delimiter(b) && b != b'=') {
            i += 1;
        }
        let name = bytes.get(name_start..i)?;
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let mut value: &[u8] = b"";
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            match *bytes.get(i)? {
                quote @ (b'"' | b'\'') => {
                    let close = find_byte(text, i + 1, quote)?;
                    value = bytes.get(i + 1..close)?;
                    i = close + 1;
                }
                b'>' => {}
                _ => {
                    let value_start = i;
                    while bytes.get(i).is_some_and(|&b| !b.is_ascii_whitespace() && b != b'>') {
                        i += 1;
                    }
                    value = bytes.get(value_start..i)?;
                }
            }
        }
        if name.eq_ignore_ascii_case(b"type") && !seen_type {
            seen_type = true;
            tag.script_type = Some(value);
        } else if name.eq_ignore_ascii_case(b"itemscope") {
            tag.itemscope = true;
        } else if name.eq_ignore_ascii_case(b"itemprop") {
            tag.itemprop = true;
        } else if name.eq_ignore_ascii_case(b"itemtype") && tag.itemtype.is_none() {
            tag.itemtype = Some(value);
        }
    }
}

/// What a tag name means to the scan and the tree model.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Content runs to the matching end tag (`script`, `style`, …).
    RawText,
    /// `<plaintext>`: the rest of the document is text.
    Plaintext,
    /// Never has content, so never stays open.
    Void,
    /// Closed by a sibling of the same name (`<p>a<p>b`, `<li>`, …).
    ClosedBySibling,
    /// Formatting elements: when implicitly closed they stay on the tree
    /// builder's list of active formatting elements and are re-opened
    /// later, so the model keeps counting them.
    Formatting,
    /// `svg` and `math`: inside them `<x/>` really closes.
    Foreign,
    Other,
}

fn classify(name: &[u8]) -> Class {
    let mut buf = [0u8; 10];
    let Some(lower) = buf.get_mut(..name.len()) else { return Class::Other };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    match &*lower {
        b"script" | b"style" | b"textarea" | b"title" | b"xmp" | b"iframe" | b"noembed" | b"noframes" | b"noscript" => {
            Class::RawText
        }
        b"plaintext" => Class::Plaintext,
        b"area" | b"base" | b"br" | b"col" | b"embed" | b"hr" | b"img" | b"input" | b"link" | b"meta" | b"source"
        | b"track" | b"wbr" | b"param" | b"keygen" | b"basefont" | b"bgsound" | b"frame" => Class::Void,
        b"p" | b"li" | b"dt" | b"dd" | b"option" | b"tr" | b"td" | b"th" => Class::ClosedBySibling,
        b"a" | b"b" | b"big" | b"code" | b"em" | b"font" | b"i" | b"nobr" | b"s" | b"small" | b"strike" | b"strong"
        | b"tt" | b"u" => Class::Formatting,
        b"svg" | b"math" => Class::Foreign,
        _ => Class::Other,
    }
}

/// One open element of the model: a hash of its lower-cased name, and what
/// kind of element it is.
#[derive(Clone, Copy)]
struct Open {
    name: u64,
    formatting: bool,
    foreign: bool,
}

/// A deliberately simple open-element stack. It charges each tag the depth
/// of the stack (what html5ever's scope checks may scan) and each end tag the
/// length of its search; implicitly closed formatting elements keep counting
/// ("zombies"), at [`ZOMBIE_WEIGHT`] each. The estimate errs high on odd
/// markup, which only costs the microdata of pathological emails.
#[derive(Default)]
struct TreeModel {
    enabled: bool,
    stack: Vec<Open>,
    zombies: u64,
    /// Open `svg`/`math` elements: inside them `<x/>` really closes.
    foreign: usize,
    work: u64,
    over: bool,
}

/// What an implicitly closed formatting element costs relative to an open
/// element: the tree builder re-creates them (measured: a step of this kind
/// takes about four times as long as a stack scan step).
const ZOMBIE_WEIGHT: u64 = 4;

impl TreeModel {
    fn depth(&self) -> u64 {
        self.stack.len() as u64 + ZOMBIE_WEIGHT * self.zombies
    }

    fn charge(&mut self, work: u64) {
        self.work = self.work.saturating_add(work);
        if self.work > MAX_TREE_WORK {
            self.over = true;
            self.stack = Vec::new();
        }
    }

    fn start(&mut self, name: &[u8], class: Class, self_closing: bool) {
        if !self.enabled || self.over {
            return;
        }
        self.charge(self.depth() + 1);
        if class == Class::Void || (self_closing && self.foreign > 0) {
            return;
        }
        let hash = hash_name(name);
        if class == Class::ClosedBySibling && self.stack.last().is_some_and(|o| o.name == hash) {
            self.stack.pop();
        }
        let foreign = class == Class::Foreign;
        if foreign {
            self.foreign += 1;
        }
        self.stack.push(Open { name: hash, formatting: class == Class::Formatting, foreign });
    }

    fn end(&mut self, name: &[u8]) {
        if !self.enabled || self.over {
            return;
        }
        let hash = hash_name(name);
        let found = self.stack.iter().rposition(|o| o.name == hash);
        let searched = found.map_or(self.stack.len(), |p| self.stack.len() - p);
        self.charge(searched as u64 + ZOMBIE_WEIGHT * self.zombies + 1);
        match found {
            Some(p) if !self.over => {
                let len = self.stack.len();
                for (k, open) in self.stack.drain(p..).enumerate() {
                    if open.formatting && p + k + 1 < len {
                        self.zombies += 1;
                    }
                    if open.foreign {
                        self.foreign = self.foreign.saturating_sub(1);
                    }
                }
            }
            Some(_) => {}
            None => {
                if self.zombies > 0 && classify(name) == Class::Formatting {
                    self.zombies -= 1;
                }
            }
        }
    }
}

/// FNV-1a of the ASCII-lower-cased name. A collision only merges two names
/// in an estimate.
fn hash_name(name: &[u8]) -> u64 {
    name.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(html: &str) -> Vec<&str> {
        scan(html, false).json_ld
    }

    #[test]
    fn finds_json_ld_scripts() {
        let html = r#"<html><head><script type="application/ld+json">{"a":1}</script>
            <script type='APPLICATION/LD+JSON; charset=utf-8' >[2]</script>
            <script type=application/ld+json>3</SCRIPT >
            <script>var x = "<script type=\"application/ld+json\">no</script>";</script>
            <script type="text/javascript">{"b":2}</script></head></html>"#;
        assert_eq!(blocks(html), vec![r#"{"a":1}"#, "[2]", "3"]);
    }

    #[test]
    fn skips_comments_and_raw_text() {
        let html = r#"<!-- <script type="application/ld+json">{"hidden":1}</script> -->
            <textarea><script type="application/ld+json">{"text":1}</script></textarea>
            <title>x</title><style>a{}</style><!---->
            <!DOCTYPE html><?xml x?><!-->
            <script type="application/ld+json"><!-- {"kept":1} --></script>"#;
        assert_eq!(blocks(html), vec![r#"<!-- {"kept":1} -->"#]);
    }

    #[test]
    fn many_comments_and_escapes_stay_linear() {
        // Quadratic scanning would take minutes on these.
        let comments = "<!-- x -->".repeat(300_000);
        assert!(!scan(&comments, true).too_complex);
        let script = format!("<script type=\"application/ld+json\"><!--{}", "<a".repeat(1_000_000));
        assert_eq!(scan(&script, false).json_ld.len(), 1);
        let bogus = "<!-x".repeat(500_000);
        assert!(scan(&bogus, false).json_ld.is_empty());
    }

    #[test]
    fn script_escapes() {
        // A commented block ends at its `</script>`.
        assert_eq!(
            blocks(r#"<script type="application/ld+json"><!-- {"a":1} --></script>x"#),
            vec![r#"<!-- {"a":1} -->"#]
        );
        assert_eq!(blocks(r#"<script type="application/ld+json"><!-->1</script>"#), vec!["<!-->1"]);
        // Inside `<!--`, a `<script>` hides the next `</script>`.
        let html = r#"<script type="application/ld+json"><!-- <script>x</script> y</script><script type="application/ld+json">2</script>"#;
        assert_eq!(blocks(html), vec![r#"<!-- <script>x</script> y"#, "2"]);
        let html = r#"<script type="application/ld+json"><!--<script></script>--></script>3</script><script type="application/ld+json">4</script>"#;
        assert_eq!(blocks(html), vec!["<!--<script></script>-->", "4"]);
        // Unclosed escapes run to the end.
        let html =
            r#"<script type="application/ld+json">1<!--<script></script><script type="application/ld+json">2</script>"#;
        assert_eq!(blocks(html), vec![r#"1<!--<script></script><script type="application/ld+json">2</script>"#]);
    }

    #[test]
    fn first_type_attribute_wins_and_odd_syntax_is_fine() {
        assert!(blocks(r#"<script type="text/plain" type="application/ld+json">x</script>"#).is_empty());
        assert_eq!(blocks(r#"<script  data-x="a>b" type = "application/ld+json" >x</script>"#), vec!["x"]);
        assert_eq!(blocks(r#"<script/type="application/ld+json">x</script>"#), vec!["x"]);
    }

    #[test]
    fn unterminated_input() {
        assert_eq!(blocks(r#"<script type="application/ld+json">{"a":"#), vec![r#"{"a":"#]);
        assert!(blocks(r#"<script type="application/ld+json"#).is_empty());
        assert!(blocks("<!-- <script type=\"application/ld+json\">1</script>").is_empty());
        assert!(blocks("<").is_empty());
        assert!(blocks("</").is_empty());
        assert!(blocks("<a href='x").is_empty());
    }

    #[test]
    fn byte_search() {
        let text = "0123456789abcdef<ghijklmnopqrstuvwxyz<é<";
        for from in 0..text.len() + 2 {
            let expected =
                text.as_bytes().get(from..).and_then(|h| h.iter().position(|&b| b == b'<')).map(|p| p + from);
            assert_eq!(find_byte(text, from, b'<'), expected, "from {from}");
        }
        assert_eq!(find_byte("\u{80}\u{ff}x", 0, b'x'), Some(4));
        assert_eq!(find_byte("aaaaaaaaaaaaaaaaaaaa", 0, b'b'), None);
    }

    fn regions(html: &str) -> Vec<(&str, &'static str)> {
        let scan = scan(html, true);
        scan.regions.iter().map(|r| (&html[r.range.clone()], r.context)).collect()
    }

    #[test]
    fn finds_reservation_item_regions() {
        let item = r#"<div itemscope itemtype="http://schema.org/FlightReservation"><div>a</div><div>b</div></div>"#;
        assert_eq!(regions(&format!("<p>x</p>{item}<p>y</p>")), vec![(item, "")]);
        // Other items, and items that are properties, are not regions.
        assert!(regions(r#"<div itemscope itemtype="http://schema.org/Product"></div>"#).is_empty());
        assert!(regions(r#"<div itemprop="x" itemscope itemtype="http://schema.org/FlightReservation">"#).is_empty());
        assert!(regions(r#"<div itemtype="http://schema.org/FlightReservation">"#).is_empty());
        // Unclosed: to the end.
        assert_eq!(
            regions(r#"<i>x<div itemscope itemtype="schema:BusReservation">a"#),
            vec![(r#"<div itemscope itemtype="schema:BusReservation">a"#, "")]
        );
        // A void element item.
        assert_eq!(
            regions(r#"<meta itemscope itemtype="FoodEstablishmentReservation">x"#),
            vec![(r#"<meta itemscope itemtype="FoodEstablishmentReservation">"#, "")]
        );
        // Misnested other elements do not end it early.
        let sloppy = r#"<div itemscope itemtype="EventReservation"><span><div>x</span></div>y</div>"#;
        assert_eq!(regions(&format!("{sloppy}z")), vec![(sloppy, "")]);
    }

    #[test]
    fn regions_take_following_property_items_and_table_context() {
        let html = r#"<table><tr itemscope itemtype="http://schema.org/LodgingReservation"><td>a</td></tr>
            <tr itemprop="reservationFor" itemscope><td>b</td></tr><tr><td>c</td></tr></table>"#;
        let r = regions(html);
        assert_eq!(r.len(), 1);
        assert!(r[0].0.starts_with("<tr itemscope") && r[0].0.ends_with("<td>b</td></tr>"));
        assert_eq!(r[0].1, "<table><tbody>");
        // A top-level item in between stops the extension.
        let html = r#"<div itemscope itemtype="EventReservation"></div><div itemscope itemtype="Product"></div>
            <div itemprop="x" itemscope></div>"#;
        assert_eq!(regions(html), vec![(r#"<div itemscope itemtype="EventReservation"></div>"#, "")]);
        // Items on the document's own elements need the whole document.
        assert!(scan(r#"<body itemscope itemtype="EventReservation">"#, true).needs_document);
    }

    #[test]
    fn ordinary_markup_is_cheap() {
        let mut html = String::new();
        for i in 0..2_000 {
            html.push_str(&format!("<table><tr><td><p>row {i}<p>more<br><img src=x><b>bold</b></td></tr></table>"));
        }
        assert!(!scan(&html, true).too_complex);
    }

    #[test]
    fn deep_nesting_is_too_complex() {
        assert!(scan(&"<div>".repeat(20_000), true).too_complex);
        // Unmatched end tags under a deep stack.
        let html = "<span>".repeat(3_000) + &"</div>".repeat(5_000);
        assert!(scan(&html, true).too_complex);
        // Implicitly closed formatting elements are re-opened by the tree builder.
        let mut html = String::from("<p>");
        for i in 0..4_000 {
            html.push_str(&format!("<b id={i}>"));
        }
        html.push_str(&"</p>x".repeat(4_000));
        assert!(scan(&html, true).too_complex);
        // Without microdata to look for, no estimate is kept.
        assert!(!scan(&"<div>".repeat(20_000), false).too_complex);
    }
}
