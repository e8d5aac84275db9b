//! Scenario mutants (issue 32): the shipped scenarios broken the way a user breaks them,
//! for structure-aware fuzzing of `validate`.
//!
//! Byte-level fuzzing never reached the two panics of issue 32 (1.2 million inputs): its
//! inputs were not scenarios. A mutant here is a shipped scenario with one to three edits
//! that know TOML's shape: SLO keys with non-ASCII or full-width digits, strings rewritten
//! with escapes and multi-byte text before their templates, broken templates, `${ENV}`
//! values, numbers out of every range, durations, key typos, and plain byte flips. Mutant
//! `i` of seed `s` is always the same bytes ([`Mutator::mutant`]), so a failure names
//! the mutant that reproduces it.
//!
//! [`check`] runs a mutant through what `validate` runs (load, then lint) and checks the
//! error's location: its line and column lie inside the file, its span starts on a char
//! boundary, the shown line is the file's line, the column counts the characters before
//! the span; and where the mutant knows where its error is (a broken template, an SLO
//! key), the caret is there.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};

use super::{ScenarioError, literal};

/// One mutant: bytes, what was done, and where its error must point when it has one.
#[derive(Debug, Clone)]
pub struct Mutant {
    pub bytes: Vec<u8>,
    /// The edits, e.g. `["slo-key", "byte-flip"]`.
    pub edits: Vec<&'static str>,
    /// Set for a single edit that knows where its error is.
    pub expect: Option<Expected>,
}

/// An error whose message starts with `message` must start at byte `at` of the mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub at: usize,
    pub message: &'static str,
}

/// Mutants of a set of scenario texts.
pub struct Mutator {
    seeds: Vec<(PathBuf, String)>,
}

impl Mutator {
    pub fn new(seeds: Vec<(PathBuf, String)>) -> Mutator {
        assert!(!seeds.is_empty(), "at least one scenario to mutate");
        Mutator { seeds }
    }

    /// The shipped scenarios: `scenarios/*.toml` and `scenarios/variants/*.toml` under `root`.
    pub fn shipped(root: &Path) -> std::io::Result<Mutator> {
        let mut seeds = Vec::new();
        for dir in ["scenarios", "scenarios/variants"] {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path)?;
                seeds.push((path, text));
            }
        }
        Ok(Mutator::new(seeds))
    }

    /// Mutant `index` of `seed`: which scenario, and its edits, follow from both alone.
    pub fn mutant(&self, seed: u64, index: u64) -> (&Path, Mutant) {
        let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (path, text) = &self.seeds[rng.random_range(0..self.seeds.len())];
        (path, mutate_text(text, &mut rng))
    }
}

/// One to three edits of `text`; only a single edit keeps its expectation.
fn mutate_text(text: &str, rng: &mut SmallRng) -> Mutant {
    let edits = match rng.random_range(0..10) {
        0..=6 => 1,
        7 | 8 => 2,
        _ => 3,
    };
    let mut mutant = Mutant { bytes: text.as_bytes().to_vec(), edits: Vec::new(), expect: None };
    for _ in 0..edits {
        let (name, bytes, expect) = edit(&mutant.bytes, rng);
        mutant.bytes = bytes;
        mutant.edits.push(name);
        mutant.expect = expect;
    }
    if mutant.edits.len() > 1 {
        mutant.expect = None;
    }
    mutant
}

/// One structure-aware edit of arbitrary bytes (the cargo-fuzz mutator's step).
pub fn mutate(bytes: &[u8], seed: u64) -> Vec<u8> {
    edit(bytes, &mut SmallRng::seed_from_u64(seed)).1
}

type Edit = (&'static str, Vec<u8>, Option<Expected>);

fn edit(bytes: &[u8], rng: &mut SmallRng) -> Edit {
    let Ok(text) = std::str::from_utf8(bytes) else { return ("byte-flip", byte_edit(bytes, rng), None) };
    let structured = match rng.random_range(0..9) {
        0 => slo_key(text, rng),
        1 | 2 => escaped_string(text, rng),
        3 => broken_template(text, rng),
        4 => number(text, rng),
        5 => duration(text, rng),
        6 => key_typo(text, rng),
        7 => line_edit(text, rng),
        _ => None,
    };
    structured.unwrap_or_else(|| ("byte-flip", byte_edit(bytes, rng), None))
}

// ---------------------------------------------------------------- the edits

const MULTI_BYTE: [&str; 8] = ["é", "Renée ", "日本語", "😀", "９９", "ß", "\u{301}", "Ω≈"];

/// An SLO key as a user mistypes it: full-width digits, accents, a dash for `_`.
fn slo_key(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let section = text.find("\n[slo]")? + "\n[slo]".len();
    let lines = lines_from(text, section);
    let (start, key) = *pick(rng, &lines)?;
    let mangled: String = match rng.random_range(0..4) {
        0 => key.chars().map(|c| if c.is_ascii_digit() { full_width(c) } else { c }).collect(),
        1 => format!("{key}{}", pick(rng, &MULTI_BYTE)?),
        2 => key.replacen('_', "－", 1),
        _ => {
            let at = char_boundary(key, rng.random_range(0..=key.len()));
            format!("{}{}{}", &key[..at], pick(rng, &MULTI_BYTE)?, &key[at..])
        }
    };
    let quoted = format!("\"{mangled}\"");
    let out = splice(text, start..start + key.len(), &quoted);
    // A new key: unknown, unless a duplicate of another (a TOML error).
    let expect = Some(Expected { at: start, message: "unknown SLO" });
    Some(("slo-key", out, expect))
}

fn full_width(digit: char) -> char {
    char::from_u32(0xFF10 + digit.to_digit(10).unwrap_or(0)).unwrap_or(digit)
}

/// A string value rewritten with escapes (`\"`, `\u00e9`, `\\`), multi-byte text and
/// `${HOME}` before its templates, and sometimes one of its templates broken.
fn escaped_string(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let literals = string_literals(text);
    let lit = pick(rng, &literals)?;
    let (mut value, _) = literal::decode(&text[lit.range.clone()])?;
    // Text inserted after the first character and before the first template (the value
    // keeps its meaning: a path still starts with `/`).
    let first_template = value.find("{{").unwrap_or(value.len());
    if first_template > 0 && rng.random_bool(0.8) {
        let at = char_boundary(&value, rng.random_range(1..=first_template)).max(value.chars().next()?.len_utf8());
        let at = at.min(first_template);
        let inserted = match rng.random_range(0..4) {
            0 => "${HOME}".to_owned(),
            1 => "\"q\\".to_owned(),
            _ => (*pick(rng, &MULTI_BYTE)?).to_owned(),
        };
        value.insert_str(at, &inserted);
    }
    let broken = (rng.random_bool(0.5) && value.contains("{{")).then(|| break_template(&mut value, rng)).flatten();
    let (raw, decoded_to_raw) = encode_basic(&value, rng);
    let out = splice(text, lit.range.clone(), &raw);
    let expect = broken
        .filter(|_| checked_template(&lit.key))
        .map(|brace| Expected { at: lit.range.start + decoded_to_raw[brace], message: "template error" });
    Some(("escaped-string", out, expect))
}

/// One template of a string value broken, the string otherwise as written.
fn broken_template(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let literals: Vec<Literal> =
        string_literals(text).into_iter().filter(|l| text[l.range.clone()].contains("{{")).collect();
    let lit = pick(rng, &literals)?;
    let (mut value, _) = literal::decode(&text[lit.range.clone()])?;
    let brace = break_template(&mut value, rng)?;
    let (raw, decoded_to_raw) = encode_basic(&value, rng);
    let out = splice(text, lit.range.clone(), &raw);
    let expect = checked_template(&lit.key)
        .then(|| Expected { at: lit.range.start + decoded_to_raw[brace], message: "template error" });
    Some(("broken-template", out, expect))
}

/// Keys whose value is compiled as a template with its error at the `{{` (a predicate's
/// template error is about the whole predicate).
fn checked_template(key: &str) -> bool {
    matches!(key, "path" | "body")
}

/// Breaks one `{{…}}` of `value`; returns the decoded offset of its `{{`.
fn break_template(value: &mut String, rng: &mut SmallRng) -> Option<usize> {
    let opens: Vec<usize> = value.match_indices("{{").map(|(at, _)| at).collect();
    let open = *pick(rng, &opens)?;
    let close = value[open..].find("}}").map(|i| open + i + 2)?;
    let broken = match rng.random_range(0..12) {
        0 => "{{int 1}}".to_owned(),
        1 => "{{int 9 1}}".to_owned(),
        2 => "{{float 1 nan}}".to_owned(),
        3 => "{{nope}}".to_owned(),
        4 => "{{}}".to_owned(),
        5 => "{{bytes 99999999999999999999}}".to_owned(),
        6 => "{{int 1 ９}}".to_owned(),
        7 => "{{choice}}".to_owned(),
        8 => "{{key extra}}".to_owned(),
        9 => "{{capture.}}".to_owned(),
        10 => "{{ref".to_owned(),
        _ => format!("{{{{int {} 1e400}}}}", pick(rng, &MULTI_BYTE)?),
    };
    // An unclosed `{{` followed by another template's `}}` still fails at this `{{`.
    value.replace_range(open..close, &broken);
    Some(open)
}

/// A number made huge, negative, fractional, not a number, or a string.
fn number(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let numbers = number_values(text);
    let range = pick(rng, &numbers)?.clone();
    const WEIRD: [&str; 16] = [
        "1e308",
        "-1",
        "-0",
        "0",
        "nan",
        "inf",
        "-inf",
        "1.5",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "0x7fffffff",
        "1_000",
        "\"5\"",
        "1e-300",
        "４２",
    ];
    Some(("number", splice(text, range, pick(rng, &WEIRD)?), None))
}

/// A duration string changed: full-width units, negative, huge, empty.
fn duration(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let durations: Vec<Literal> = string_literals(text)
        .into_iter()
        .filter(|l| {
            let inner = &text[l.range.start + 1..l.range.end - 1];
            inner.starts_with(|c: char| c.is_ascii_digit()) && inner.ends_with(['s', 'm', 'h'])
        })
        .collect();
    let lit = pick(rng, &durations)?;
    const WEIRD: [&str; 10] = [
        "\"5ｓ\"",
        "\"-1s\"",
        "\"99999999999h\"",
        "\"\"",
        "\"5 s\"",
        "\"1e3s\"",
        "\"５s\"",
        "\"0s\"",
        "\"1.5.5s\"",
        "5",
    ];
    Some(("duration", splice(text, lit.range.clone(), pick(rng, &WEIRD)?), None))
}

/// A key at the start of a line misspelt, or given a non-ASCII character.
fn key_typo(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let lines = lines_from(text, 0);
    let (start, key) = *pick(rng, &lines)?;
    let typo = match rng.random_range(0..3) {
        0 if key.len() > 2 => format!("{}{}{}", &key[..1], &key[2..], &key[1..2]),
        1 => format!("\"{key}{}\"", pick(rng, &MULTI_BYTE)?),
        _ => format!("{key}{}", pick(rng, &MULTI_BYTE)?),
    };
    Some(("key-typo", splice(text, start..start + key.len(), &typo), None))
}

/// A line deleted, duplicated, or moved under another table.
fn line_edit(text: &str, rng: &mut SmallRng) -> Option<Edit> {
    let starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < text.len()).collect();
    let from = *pick(rng, &starts)?;
    let end = text[from..].find('\n').map_or(text.len(), |i| from + i + 1);
    let line = text[from..end].to_owned();
    let out = match rng.random_range(0..3) {
        0 => splice(text, from..end, ""),
        1 => splice(text, from..from, &line),
        _ => {
            let to = *pick(rng, &starts)?;
            let mut removed = String::from_utf8(splice(text, from..end, "")).ok()?;
            let to = char_boundary(&removed, if to > from { to - (end - from) } else { to });
            removed.insert_str(to, &line);
            removed.into_bytes()
        }
    };
    Some(("line-edit", out, None))
}

/// Byte flips, inserted fragments (quotes, braces, invalid UTF-8, half characters),
/// deletions, truncation.
fn byte_edit(bytes: &[u8], rng: &mut SmallRng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = rng.random_range(0..=out.len());
    match rng.random_range(0..4) {
        0 if !out.is_empty() => {
            let at = at.min(out.len() - 1);
            out[at] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            const FRAGMENTS: [&[u8]; 12] =
                [b"\xff", b"\xc3", b"\xe2\x82", b"\"", b"\\", b"{{", b"}}", b"[", b"=", b"\n", b"\0", "é".as_bytes()];
            let fragment = FRAGMENTS[rng.random_range(0..FRAGMENTS.len())];
            out.splice(at..at, fragment.iter().copied());
        }
        2 => {
            let end = (at + rng.random_range(1..16)).min(out.len());
            out.drain(at..end);
        }
        _ => out.truncate(at),
    }
    out
}

// ---------------------------------------------------------------- TOML shapes

/// A one-line string value: its key and the literal with its quotes.
#[derive(Debug, Clone)]
struct Literal {
    key: String,
    range: Range<usize>,
}

/// Every `key = "…"` or `key = '…'` on one line (inline tables too), not in comments.
fn string_literals(text: &str) -> Vec<Literal> {
    let mut found = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with('#') {
            for (eq, _) in line.match_indices("= ") {
                let open = eq + 2;
                let Some(quote @ ('"' | '\'')) = line[open..].chars().next() else { continue };
                if line[open..].starts_with("\"\"\"") || line[open..].starts_with("'''") {
                    continue;
                }
                let Some(close) = closing_quote(&line[open + 1..], quote) else { continue };
                let key = line[..eq].trim_end().rsplit([' ', '{', ',']).next().unwrap_or_default().to_owned();
                found.push(Literal { key, range: line_start + open..line_start + open + 1 + close + 1 });
            }
        }
        line_start += line.len();
    }
    found
}

/// The byte offset of the quote that closes a literal whose content starts `rest`.
fn closing_quote(rest: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\n' => return None,
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

/// `value` as a basic string, some characters escaped; and for each byte of `value` the
/// offset in the literal of what writes it.
fn encode_basic(value: &str, rng: &mut SmallRng) -> (String, Vec<usize>) {
    let mut raw = String::from("\"");
    let mut map = Vec::with_capacity(value.len() + 1);
    for c in value.chars() {
        let at = raw.len();
        match c {
            '"' => raw.push_str("\\\""),
            '\\' => raw.push_str("\\\\"),
            '\n' => raw.push_str("\\n"),
            '\t' => raw.push_str("\\t"),
            c if c.is_control() => raw.push_str(&format!("\\u{:04x}", c as u32)),
            c if !c.is_ascii() && rng.random_bool(0.5) => {
                if c as u32 > 0xFFFF {
                    raw.push_str(&format!("\\U{:08X}", c as u32));
                } else {
                    raw.push_str(&format!("\\u{:04X}", c as u32));
                }
            }
            c => raw.push(c),
        }
        map.extend(std::iter::repeat_n(at, c.len_utf8()));
    }
    map.push(raw.len());
    raw.push('"');
    (raw, map)
}

/// Keys at the start of lines after byte `from` up to the next table header: (offset, key).
fn lines_from(text: &str, from: usize) -> Vec<(usize, &str)> {
    let mut keys = Vec::new();
    let mut start = from;
    for line in text[from..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && start > from {
            break;
        }
        let key_end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).unwrap_or(0);
        if key_end > 0 && trimmed[key_end..].trim_start().starts_with('=') {
            keys.push((start + (line.len() - trimmed.len()), &trimmed[..key_end]));
        }
        start += line.len();
    }
    keys
}

/// Numbers written as values (`= 500`, `rate = 5.5` in inline tables too).
fn number_values(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    for (eq, _) in text.match_indices("= ") {
        let start = eq + 2;
        let len = text[start..]
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '_' | 'e' | 'E' | '+' | '-')))
            .unwrap_or(text.len() - start);
        if len > 0 && text[start..].starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            found.push(start..start + len);
        }
    }
    found
}

fn splice(text: &str, range: Range<usize>, with: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + with.len());
    out.extend_from_slice(&text.as_bytes()[..range.start]);
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(&text.as_bytes()[range.end..]);
    out
}

fn char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.random_range(0..items.len())])
}

// ---------------------------------------------------------------- the check

/// What `validate` made of a mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Rejected with a well-formed located error.
    Located,
    /// Rejected with the error the edit made, at the byte the edit knows it is at.
    Pinned,
}

/// Runs `mutant` through `validate`'s checks (load, lint) in this process. `Err`: the
/// error's location is wrong (a panic propagates: the caller catches it).
pub fn check(path: &Path, mutant: &Mutant) -> Result<Verdict, String> {
    match super::load_bytes(mutant.bytes.clone(), path, &[]) {
        Ok(scenario) => {
            let _ = super::lint(&scenario);
            let _ = scenario.load_duration();
            Ok(Verdict::Accepted)
        }
        Err(ScenarioError::Located(located)) => {
            let _ = located.to_string();
            let text = String::from_utf8_lossy(&mutant.bytes);
            check_location(&text, &located)?;
            match &mutant.expect {
                Some(expect) if located.message.starts_with(expect.message) => {
                    if located.span.start == expect.at {
                        return Ok(Verdict::Pinned);
                    }
                    let (line, column) = line_column(&text, expect.at);
                    Err(format!(
                        "`{}` at {}:{} (byte {}), expected at {line}:{column} (byte {})",
                        located.message, located.line, located.column, located.span.start, expect.at
                    ))
                }
                _ => Ok(Verdict::Located),
            }
        }
        Err(other) => Err(format!("not located: {other}")),
    }
}

/// Line and column inside `text`, on a char boundary, the shown line the file's own, the
/// column its characters before the span plus one.
fn check_location(text: &str, located: &super::Located) -> Result<(), String> {
    let start = located.span.start;
    if start > text.len() || !text.is_char_boundary(start) {
        return Err(format!("span {:?} is not on a char boundary of the file", located.span));
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let Some(line) = located.line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return Err(format!("line {} is outside the file ({} lines)", located.line, lines.len()));
    };
    let line = line.trim_end_matches('\r');
    let (expected_line, expected_column) = line_column(text, start);
    if located.line != expected_line {
        return Err(format!("line {} for byte {start}, which is on line {expected_line}", located.line));
    }
    // A password in a URL is masked on the shown line: compare the masked text.
    if located.line_text != super::redact::redact_urls(line) {
        return Err(format!("shown line `{}` is not line {}", located.line_text, located.line));
    }
    let chars = located.line_text.chars().count();
    if located.column == 0 || located.column > chars + 1 {
        return Err(format!("column {} is outside line {} ({chars} characters)", located.column, located.line));
    }
    if located.line_text == line && located.column != expected_column {
        return Err(format!("column {} for byte {start}, which is column {expected_column}", located.column));
    }
    Ok(())
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = char_boundary(text, at);
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (text[..at].matches('\n').count() + 1, text[line_start..at].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quickstart() -> Mutator {
        Mutator::shipped(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("the shipped scenarios")
    }

    #[test]
    fn same_seed_same_mutants() {
        let m = quickstart();
        for i in 0..50 {
            assert_eq!(m.mutant(7, i).1.bytes, m.mutant(7, i).1.bytes);
        }
        assert!((0..50).any(|i| m.mutant(7, i).1.bytes != m.mutant(8, i).1.bytes));
    }

    #[test]
    fn encoded_strings_decode_to_the_value_with_a_true_map() {
        let mut rng = SmallRng::seed_from_u64(3);
        for value in ["{\"owner\": \"Renée {{int 1}}\"}", "a\\b\t😀\u{1}é", ""] {
            for _ in 0..20 {
                let (raw, map) = encode_basic(value, &mut rng);
                let (decoded, _) = literal::decode(&raw).expect("a basic string");
                assert_eq!(decoded, value);
                for (i, _) in value.char_indices() {
                    assert_eq!(literal::decode(&format!("\"{}", &raw[map[i]..])).unwrap().0, value[i..]);
                }
            }
        }
    }

    #[test]
    fn the_shapes_are_found() {
        let text = "name = \"x\"\n# c = \"no\"\n[t]\nbody = '{\"a\": 1}'\nrate = 50\nh = { X = \"a\\\"b\", n = 5 }\n";
        let keys: Vec<String> = string_literals(text).into_iter().map(|l| l.key).collect();
        assert_eq!(keys, ["name", "body", "X"]);
        let numbers: Vec<&str> = number_values(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(numbers, ["50", "5"]);
        assert_eq!(
            lines_from(text, text.find("[t]").unwrap() + 3).iter().map(|(_, k)| *k).collect::<Vec<_>>(),
            ["body", "rate", "h"]
        );
    }
}
