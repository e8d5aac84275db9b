//! From a place in a TOML string's decoded value back to the raw file (issue 32).
//!
//! Templates, selectors and pointers are checked on the value serde hands over, whose
//! offsets count decoded bytes: `\"` is one byte there and two in the file, `\u00e9` two
//! and six. A caret placed by adding a decoded offset to the literal's start was off by
//! the escapes (column 33 for 39) or landed inside a multi-byte character (a panic).
//! Here the literal is decoded again with a map from each decoded byte to the raw byte
//! it came from; if that decoding does not give serde's value back (a form this reader
//! does not know), the caret goes to the literal's start rather than somewhere wrong.

use std::ops::Range;

/// The byte of `source` that wrote decoded byte `offset` of the string literal at `span`
/// whose value is `value`. Always a char boundary within `span` (its start when unsure); a
/// byte inside an escape maps to the escape's backslash, `value.len()` to the closing quote.
pub fn source_offset(source: &str, span: &Range<usize>, value: &str, offset: usize) -> usize {
    let Some(raw) = source.get(span.clone()) else { return floor_boundary(source, span.start) };
    match decode(raw) {
        Some((decoded, map)) if decoded == value => span.start + map[offset.min(decoded.len())],
        _ => span.start,
    }
}

fn floor_boundary(source: &str, at: usize) -> usize {
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A literal (`"…"`, `'…'`, `"""…"""`, `'''…'''`) decoded, with the raw offset of each
/// decoded byte (and one past the end: the closing delimiter). `None`: not a literal.
pub(super) fn decode(raw: &str) -> Option<(String, Vec<usize>)> {
    let (quote, basic) = if raw.starts_with("\"\"\"") {
        ("\"\"\"", true)
    } else if raw.starts_with("'''") {
        ("'''", false)
    } else if raw.starts_with('"') {
        ("\"", true)
    } else if raw.starts_with('\'') {
        ("'", false)
    } else {
        return None;
    };
    if raw.len() < 2 * quote.len() || !raw.ends_with(quote) {
        return None;
    }
    let mut at = quote.len();
    let end = raw.len() - quote.len();
    let multi_line = quote.len() == 3;
    // A newline right after the opening delimiter is not part of the value.
    if multi_line {
        if raw[at..end].starts_with("\r\n") {
            at += 2;
        } else if raw[at..end].starts_with('\n') {
            at += 1;
        }
    }
    let (mut decoded, mut map) = (String::new(), Vec::new());
    let mut push = |decoded: &mut String, text: &str, from: usize| {
        decoded.push_str(text);
        map.extend(std::iter::repeat_n(from, text.len()));
    };
    while at < end {
        let rest = &raw[at..end];
        let c = rest.chars().next()?;
        if !(basic && c == '\\') {
            push(&mut decoded, &rest[..c.len_utf8()], at);
            at += c.len_utf8();
            continue;
        }
        let escape = rest[1..].chars().next()?;
        let simple = match escape {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(c) = simple {
            push(&mut decoded, c.encode_utf8(&mut [0; 4]), at);
            at += 2;
            continue;
        }
        let digits = match escape {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            // A line-ending backslash (multi-line): the whitespace and newlines after it go.
            ' ' | '\t' | '\r' | '\n' if multi_line => {
                let skipped = rest[1..].len() - rest[1..].trim_start_matches([' ', '\t', '\r', '\n']).len();
                at += 1 + skipped;
                continue;
            }
            _ => return None,
        };
        let hex = rest.get(2..2 + digits)?;
        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
        push(&mut decoded, c.encode_utf8(&mut [0; 4]), at);
        at += 2 + digits;
    }
    map.push(end);
    Some((decoded, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The literal of `value = …` in `line`, parsed by the toml crate.
    fn spanned(line: &str) -> (String, Range<usize>) {
        #[derive(serde::Deserialize)]
        struct Doc {
            value: toml::Spanned<String>,
        }
        let doc: Doc = toml::from_str(line).expect("valid TOML");
        (doc.value.get_ref().clone(), doc.value.span())
    }

    /// `source_offset` of where `needle` is in the value, and the raw text from there.
    fn raw_at(line: &str, needle: &str) -> String {
        let (value, span) = spanned(line);
        let offset = value.find(needle).expect("needle in the value");
        line[source_offset(line, &span, &value, offset)..].to_owned()
    }

    #[test]
    fn escapes_and_multi_byte_text_map_to_the_raw_file() {
        let line = r#"value = "{\"owner\": \"Renée {{int 1}}\"}""#;
        assert!(raw_at(line, "{{int").starts_with("{{int 1}}"));
        assert!(raw_at(r#"value = "caf\u00e9 {{x}}""#, "{{x").starts_with("{{x}}"));
        assert!(raw_at(r#"value = "\U0001F600 {{x}}""#, "{{x").starts_with("{{x}}"));
        assert!(raw_at(r#"value = "tab\there {{x}}""#, "{{x").starts_with("{{x}}"));
        assert!(raw_at(r#"value = 'Renée \" {{x}}'"#, "{{x").starts_with("{{x}}"));
        assert!(raw_at("value = '''\nRenée\n{{x}}'''", "{{x").starts_with("{{x}}"));
        assert!(raw_at("value = \"\"\"\r\nRen\\u00e9e \\\n     \\\"{{x}}\"\"\"", "{{x").starts_with("{{x}}"));
        // Inside an escape: its backslash.
        assert!(raw_at(r#"value = "caf\u00e9""#, "\u{e9}").starts_with("\\u00e9"));
    }

    #[test]
    fn every_decoded_boundary_maps_to_a_raw_boundary_in_the_literal() {
        for line in [r#"value = "a\"é\u00e9\\x😀 \n""#, "value = '''\n\"é'''", "value = \"\"\"\\\n  a\\tb\"\"\""] {
            let (value, span) = spanned(line);
            let mut last = span.start;
            for offset in 0..=value.len() {
                let at = source_offset(line, &span, &value, offset);
                assert!(line.is_char_boundary(at) && span.contains(&at) && at >= last, "{line}: {offset} → {at}");
                last = at;
            }
        }
    }

    #[test]
    fn not_a_literal_or_not_this_value_points_at_the_start() {
        assert_eq!(source_offset("x = 12", &(4..6), "12", 1), 4);
        assert_eq!(source_offset("x = \"ab\"", &(4..8), "other", 1), 4);
        assert_eq!(source_offset("é", &(1..9), "", 0), 0);
    }
}
