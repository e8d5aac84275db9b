//! Selectors and predicates: how probes, captures and `[verify]` reach into an answer.
//!
//! Real read models are not our reference bank (issue 12): a list endpoint answers
//! `{"data": [{"_id": "…", "describe": "<ref> buy milk"}, …]}`, a create answers 201 with
//! the new id in `Location` and no body. A selector is one of:
//!
//! | selector            | selects                                                   |
//! |---------------------|-----------------------------------------------------------|
//! | `/data/0/id`        | a JSON pointer (RFC 6901): one value or nothing           |
//! | `$.data[*].describe`| a JSONPath (RFC 9535): every matching value               |
//! | `header:location`   | a response header's value (captures only)                 |
//! | `status`            | the response status (captures only)                       |
//!
//! A selection that is one array stands for its items, so `/refs` and `$.data` select
//! the elements of the list. Predicates (`[projection] until`):
//!
//! | predicate                 | holds when                                            |
//! |---------------------------|-------------------------------------------------------|
//! | `SEL contains VALUE`      | some selected value, at any depth (inside objects too), equals VALUE or is a string holding VALUE as a whole token (not followed or preceded by a letter or digit, so ref `…​.1` is not found in `…​.12`) |
//! | `SEL matches REGEX`       | some selected string matches the regular expression   |
//! | `SEL OP VALUE`            | OP is `==`, `!=`, `>=`, `>`, `<=`, `<`: some selected value compares so (numbers as numbers, else `==`/`!=` as text) |
//! | `count(SEL) OP N`         | the number of selected values compares so             |
//!
//! VALUE and REGEX are templates (`{{ref}}`, `{{key}}`, `{{capture.NAME}}`), rendered once per probe.
//! In `[projection] until` (issue 31) also `{{key.acked}}`, `{{key.expected}}` and
//! `{{body./pointer}}`; a predicate whose value is `{{key.expected}}` compares numbers for
//! equality within a relative 1e-9, like `[verify] value` (sums of decimal amounts).

use serde_json::Value;
use serde_json_path::JsonPath;

use super::template::Template;
use crate::refs::OpRef;

/// Where in an answer to look.
#[derive(Debug, Clone)]
pub enum Selector {
    Pointer(String),
    /// A JSONPath and its text as written (issue 32: the parsed path displays `$..describe`
    /// as `$...describe`).
    Path {
        path: Box<JsonPath>,
        text: String,
    },
    /// Lower-cased header name.
    Header(String),
    Status,
}

impl PartialEq for Selector {
    fn eq(&self, other: &Selector) -> bool {
        self.to_string() == other.to_string()
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Pointer(p) => f.write_str(p),
            Selector::Path { text, .. } => f.write_str(text),
            Selector::Header(h) => write!(f, "header:{h}"),
            Selector::Status => f.write_str("status"),
        }
    }
}

/// What a selector may read: the body selectors need JSON, the others the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// JSON pointer or JSONPath only (read models).
    Body,
    /// Also `header:NAME` and `status` (captures).
    Answer,
}

/// Recursive descents (`..`) a JSONPath may hold (issue 32). With d of them, a query
/// visits up to (nodes × depth)^d values of an answer: one or two stay within the
/// answer's size times its depth; each more multiplies it again.
pub const MAX_DESCENTS: usize = 2;

/// The `..` segments of a JSONPath, filters included, string literals not.
fn descendant_segments(text: &str) -> usize {
    let (mut count, mut quote, mut escaped, mut previous_dot) = (0, None, false, false);
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                previous_dot = false;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                if c == '.' && previous_dot {
                    count += 1;
                    previous_dot = false; // `...` is one descent and a dot
                } else {
                    previous_dot = c == '.';
                }
            }
        }
    }
    count
}

impl Selector {
    /// Parses a selector; the error says what was expected.
    pub fn parse(text: &str, scope: Scope) -> Result<Selector, String> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('/') {
            if let Some((_, why)) = pointer_error(text) {
                return Err(why);
            }
            return Ok(Selector::Pointer(text.to_owned()));
        }
        if text.starts_with('$') {
            let descents = descendant_segments(text);
            if descents > MAX_DESCENTS {
                return Err(format!(
                    "`{text}` has {descents} recursive descents (`..`): at most {MAX_DESCENTS}, as each one \
                     multiplies the nodes visited by the answer's size (issue 32: `$..*..*..*…` on a 1 KB answer \
                     took 15 s and 825 MB); name the fields between them"
                ));
            }
            return JsonPath::parse(text)
                .map(|p| Selector::Path { path: Box::new(p), text: text.to_owned() })
                .map_err(|e| format!("`{text}` is not a JSONPath: {e}"));
        }
        if scope == Scope::Answer {
            if let Some(name) = text.strip_prefix("header:") {
                let name = name.trim().to_ascii_lowercase();
                return match http::HeaderName::try_from(name.as_str()) {
                    Ok(_) => Ok(Selector::Header(name)),
                    Err(_) => Err(format!("`{name}` is not a header name")),
                };
            }
            if text == "status" {
                return Ok(Selector::Status);
            }
        }
        let also = if scope == Scope::Answer { ", `header:NAME` or `status`" } else { "" };
        Err(format!(
            "`{text}` is not a selector: expected a JSON pointer (\"/refs\") or a JSONPath (\"$.data[*].id\"){also}"
        ))
    }

    /// True when the selector reads the body (needs JSON).
    pub fn reads_body(&self) -> bool {
        matches!(self, Selector::Pointer(_) | Selector::Path { .. })
    }

    /// The selected values of a JSON document; one selected array stands for its items.
    pub fn select<'v>(&self, json: &'v Value) -> Vec<&'v Value> {
        let nodes: Vec<&Value> = match self {
            Selector::Pointer(p) => json.pointer(p).into_iter().collect(),
            Selector::Path { path, .. } => path.query(json).all(),
            Selector::Header(_) | Selector::Status => Vec::new(),
        };
        match nodes.as_slice() {
            [Value::Array(items)] => items.iter().collect(),
            _ => nodes,
        }
    }

    /// The first selected value of an answer as text (captures): strings as they are,
    /// other JSON in its JSON form.
    pub fn capture(&self, status: u16, headers: &http::HeaderMap, json: Option<&Value>) -> Option<String> {
        match self {
            Selector::Status => Some(status.to_string()),
            Selector::Header(name) => headers.get(name.as_str())?.to_str().ok().map(str::to_owned),
            Selector::Pointer(_) | Selector::Path { .. } => {
                // A capture keeps a list whole: select without flattening.
                let node = match self {
                    Selector::Pointer(p) => json?.pointer(p),
                    Selector::Path { path, .. } => path.query(json?).first(),
                    _ => None,
                }?;
                Some(text_of(node))
            }
        }
    }
}

/// The first bad escape of JSON pointer `pointer`, as its byte offset and why (issue 32:
/// `/a~2b` was accepted and could never match). RFC 6901: `~` is followed by `0` (a `~`)
/// or `1` (a `/`), nothing else.
pub fn pointer_error(pointer: &str) -> Option<(usize, String)> {
    let (at, _) =
        pointer.match_indices('~').find(|(at, _)| !matches!(pointer.as_bytes().get(at + 1), Some(b'0' | b'1')))?;
    let escape: String = pointer[at..].chars().take(2).collect();
    Some((
        at,
        format!("`{pointer}` is not a JSON pointer: `{escape}` is not an escape (`~0` is a `~`, `~1` a `/` in a name)"),
    ))
}

/// A string as it is, anything else in its JSON form.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[projection] until`, checked.
#[derive(Debug, Clone)]
pub struct Predicate {
    pub selector: Selector,
    pub test: Test,
    /// The right-hand side (rendered once per probe).
    pub value: Template,
    /// `==`/`!=` on numbers within a relative 1e-9: the value is a sum the harness made
    /// (`{{key.expected}}`), which the read model may have added in another order.
    pub approximate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Contains,
    Matches,
    Compare(Comparison),
    /// `count(SEL) OP N`.
    Count(Comparison),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    NotEqual,
    GreaterOrEqual,
    Greater,
    LessOrEqual,
    Less,
}

impl Comparison {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Equal => ordering == Equal,
            Comparison::NotEqual => ordering != Equal,
            Comparison::GreaterOrEqual => ordering != Less,
            Comparison::Greater => ordering == Greater,
            Comparison::LessOrEqual => ordering != Greater,
            Comparison::Less => ordering == Less,
        }
    }
}

/// Operators, longest first so `>=` is not read as `>`.
const OPERATORS: [(&str, Comparison); 6] = [
    ("==", Comparison::Equal),
    ("!=", Comparison::NotEqual),
    (">=", Comparison::GreaterOrEqual),
    ("<=", Comparison::LessOrEqual),
    (">", Comparison::Greater),
    ("<", Comparison::Less),
];

pub const PREDICATE_HINT: &str = "write \"SELECTOR contains {{ref}}\", \"SELECTOR matches REGEX\", \"SELECTOR >= {{capture.version}}\" \
(==, !=, >, >=, <, <=) or \"count(SELECTOR) >= 1\"; SELECTOR is a JSON pointer (/refs) or a JSONPath ($.data[*].describe)";

impl Predicate {
    /// Parses `SELECTOR contains VALUE`, `SELECTOR matches REGEX`, `SELECTOR OP VALUE`,
    /// `count(SELECTOR) OP N`. The error is a message without location.
    pub fn parse(text: &str) -> Result<Predicate, String> {
        Predicate::parse_with(text, false)
    }

    /// Parses `[projection] until`: its value may read the probed command's facts
    /// (`{{key.acked}}`, `{{key.expected}}`, `{{body./pointer}}`, issue 31).
    pub fn parse_probe(text: &str) -> Result<Predicate, String> {
        Predicate::parse_with(text, true)
    }

    fn parse_with(text: &str, facts: bool) -> Result<Predicate, String> {
        let mut predicate = Predicate::parse_text(text, facts)?;
        predicate.approximate = predicate.value.facts().any(|f| matches!(f, super::template::FactName::KeyExpected(_)));
        Ok(predicate)
    }

    fn parse_text(text: &str, facts: bool) -> Result<Predicate, String> {
        let compile = |text: &str| compile(text, facts);
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("count(") {
            let close = rest.find(')').ok_or("`count(` has no closing `)`")?;
            let selector = Selector::parse(&rest[..close], Scope::Body)?;
            let rest = rest[close + 1..].trim();
            let (comparison, value) = OPERATORS
                .iter()
                .find_map(|(word, c)| rest.strip_prefix(word).map(|v| (*c, v.trim())))
                .ok_or_else(|| format!("after `count(…)` expected a comparison (==, >=, …), found `{rest}`"))?;
            return Ok(Predicate {
                selector,
                test: Test::Count(comparison),
                value: compile(value)?,
                approximate: false,
            });
        }
        for (word, test) in [(" contains ", Test::Contains), (" matches ", Test::Matches)] {
            if let Some((selector, value)) = text.split_once(word) {
                let selector = Selector::parse(selector, Scope::Body)?;
                let value = compile(value.trim())?;
                if test == Test::Matches
                    && let Some(literal) = value.as_literal()
                {
                    regex::Regex::new(literal).map_err(|e| format!("`{literal}` is not a regular expression: {e}"))?;
                }
                return Ok(Predicate { selector, test, value, approximate: false });
            }
        }
        // `SELECTOR OP VALUE`: the first ` OP ` outside brackets and quotes (a JSONPath
        // filter such as `[?@.id == '2']` holds its own).
        let Some((at, len, comparison)) = operator_outside_brackets(text) else {
            return Err(format!("`{text}` is not a predicate"));
        };
        let selector = Selector::parse(&text[..at], Scope::Body)?;
        let value = compile(text[at + len + 2..].trim())?;
        Ok(Predicate { selector, test: Test::Compare(comparison), value, approximate: false })
    }

    /// Does a JSON answer satisfy the predicate, with its value rendered as `expected`?
    pub fn holds(&self, body: &[u8], expected: &str) -> bool {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        self.holds_on(&json, expected)
    }

    pub fn holds_on(&self, json: &Value, expected: &str) -> bool {
        let selected = self.selector.select(json);
        match self.test {
            Test::Contains => selected.iter().any(|v| contains(v, expected)),
            Test::Matches => match regex::Regex::new(expected) {
                Ok(re) => selected.iter().any(|v| matches!(v, Value::String(s) if re.is_match(s))),
                Err(_) => false,
            },
            Test::Compare(c) if self.approximate => selected.iter().any(|v| compare_approximately(v, expected, c)),
            Test::Compare(c) => selected.iter().any(|v| compare(v, expected, c)),
            Test::Count(c) => expected
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|n| (selected.len() as f64).partial_cmp(&n))
                .is_some_and(|o| c.holds(o)),
        }
    }
}

/// Byte offset, length and meaning of the first ` OP ` at bracket depth 0, outside quotes.
fn operator_outside_brackets(text: &str) -> Option<(usize, usize, Comparison)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => depth -= 1,
            (None, ' ') if depth == 0 => {
                let rest = &text[at + 1..];
                if let Some((word, comparison)) =
                    OPERATORS.iter().find(|(word, _)| rest.strip_prefix(word).is_some_and(|r| r.starts_with(' ')))
                {
                    return Some((at, word.len(), *comparison));
                }
            }
            _ => {}
        }
    }
    None
}

fn compile(text: &str, facts: bool) -> Result<Template, String> {
    let text = text.trim();
    // A quoted right-hand side: the quotes are not part of the value.
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
        .unwrap_or(text);
    let compiled = if facts { Template::compile_probe(text) } else { Template::compile(text) };
    compiled.map_err(|e| format!("template error: {}", e.message))
}

/// `value` holds `expected` anywhere inside it: an equal scalar, or a string with
/// `expected` as a whole token.
fn contains(value: &Value, expected: &str) -> bool {
    match value {
        Value::String(s) => has_token(s, expected),
        Value::Array(items) => items.iter().any(|v| contains(v, expected)),
        Value::Object(fields) => fields.values().any(|v| contains(v, expected)),
        other => compare(other, expected, Comparison::Equal),
    }
}

/// `needle` occurs in `haystack` with no letter or digit right before or after it.
pub fn has_token(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    haystack.match_indices(needle).any(|(at, _)| {
        boundary(haystack[..at].chars().next_back()) && boundary(haystack[at + needle.len()..].chars().next())
    })
}

/// Does `value OP expected` hold? Numbers (or numeric strings) compare as numbers;
/// other values only for `==` and `!=`, as text.
fn compare(value: &Value, expected: &str, comparison: Comparison) -> bool {
    let expected = expected.trim();
    if let (Some(a), Ok(b)) = (number(value), expected.parse::<f64>()) {
        return a.partial_cmp(&b).is_some_and(|o| comparison.holds(o));
    }
    // Borrowed for strings: a probe compares on every poll.
    let text: std::borrow::Cow<'_, str> = match value {
        Value::String(s) => s.as_str().into(),
        Value::Null | Value::Bool(_) | Value::Number(_) => value.to_string().into(),
        Value::Array(_) | Value::Object(_) => return false,
    };
    match comparison {
        Comparison::Equal => text == expected,
        Comparison::NotEqual => text != expected,
        _ => false,
    }
}

/// [`compare`], with numbers equal within a relative 1e-9 (the tolerance of `[verify]
/// value`): 0.1 + 0.2 equals 0.3.
fn compare_approximately(value: &Value, expected: &str, comparison: Comparison) -> bool {
    if let (Some(a), Ok(b), Comparison::Equal | Comparison::NotEqual) =
        (number(value), expected.trim().parse::<f64>(), comparison)
    {
        let equal = (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        return equal == (comparison == Comparison::Equal);
    }
    compare(value, expected, comparison)
}

/// A number, or a string that reads as one.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok().filter(|v: &f64| v.is_finite()),
        _ => None,
    }
}

/// Refs written by cqrs-bench inside one selected value: a string that is a ref, or
/// every ref-shaped token inside strings at any depth (`"<ref> buy milk"`,
/// `{"describe": "<ref> …"}`). Each distinct ref once per value.
pub fn refs_in(value: &Value, out: &mut Vec<OpRef>) {
    let start = out.len();
    collect_refs(value, out);
    // One row naming a ref twice (in two fields) is one application.
    let mut seen = std::collections::HashSet::new();
    let mut i = start;
    while i < out.len() {
        if seen.insert(out[i]) {
            i += 1;
        } else {
            out.remove(i);
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<OpRef>) {
    match value {
        Value::String(s) => {
            if let Some(r) = OpRef::parse(s) {
                out.push(r);
            } else {
                out.extend(s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).filter_map(ref_token));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A token shaped `XXXXXXXX.N.N` (a trailing sentence dot allowed).
fn ref_token(token: &str) -> Option<OpRef> {
    OpRef::parse(token.strip_suffix('.').unwrap_or(token))
}

#[cfg(test)]
mod tests {
    /// Issue 32: at most two recursive descents; dots in string literals are not descents.
    #[test]
    fn issue32_recursive_descents_are_bounded() {
        assert_eq!(descendant_segments("$..a..b"), 2);
        assert_eq!(descendant_segments("$['a..b']..c"), 1);
        assert_eq!(descendant_segments("$.data[?@..x == \"..\"]"), 1);
        assert!(Selector::parse("$..*..*", Scope::Body).is_ok());
        let deep = format!("${}", "..*".repeat(20));
        let error = Selector::parse(&deep, Scope::Body).unwrap_err();
        assert!(error.contains("has 20 recursive descents"), "{error}");
    }

    use super::*;
    use serde_json::json;

    fn holds(predicate: &str, body: Value, expected: &str) -> bool {
        Predicate::parse(predicate).expect("parses").holds_on(&body, expected)
    }

    #[test]
    fn pointer_predicates_as_before() {
        let body = json!({"refs": ["a", "b"], "version": 7, "name": "acct-1"});
        assert!(holds("/refs contains {{ref}}", body.clone(), "b"));
        assert!(!holds("/refs contains {{ref}}", body.clone(), "c"));
        assert!(holds("/version >= 7", body.clone(), "7"));
        assert!(!holds("/version >= 8", body.clone(), "8"));
        assert!(holds("/version == 7", body.clone(), "7"));
        assert!(holds("/name == acct-1", body.clone(), "acct-1"));
        assert!(!holds("/missing == 7", body.clone(), "7"));
        assert!(holds("/version != 8", body.clone(), "8"));
        assert!(holds("/version < 8", body, "8"));
    }

    #[test]
    fn lists_of_objects_with_refs_in_strings() {
        let body = json!({"data": [
            {"_id": "1", "describe": "abcd0001.0.12 buy milk", "finished": false},
            {"_id": "2", "describe": "abcd0001.0.3 walk", "finished": true},
        ]});
        // Whole tokens only: ref .1 is not inside .12.
        assert!(holds("/data contains {{ref}}", body.clone(), "abcd0001.0.12"));
        assert!(!holds("/data contains {{ref}}", body.clone(), "abcd0001.0.1"));
        assert!(holds("$.data[*].describe contains {{ref}}", body.clone(), "abcd0001.0.3"));
        assert!(holds("$.data[?@._id == '2'].finished == true", body.clone(), "true"));
        assert!(!holds("$.data[?@._id == '1'].finished == true", body.clone(), "true"));
        assert!(holds("count($.data[*]) >= 2", body.clone(), "2"));
        assert!(holds("count(/data) == 2", body.clone(), "2"));
        assert!(holds("$.data[*].describe matches ^abcd0001\\.0\\.3 ", body.clone(), "^abcd0001\\.0\\.3 "));
        assert!(!holds("$.data[*].describe matches ^zzz", body, "^zzz"));
    }

    #[test]
    fn refs_found_in_strings_and_objects() {
        let mut refs = Vec::new();
        let row = json!({"describe": "abcd0001.0.12 buy milk.", "note": "see abcd0001.0.12", "x": "abcd0001.0.4."});
        refs_in(&row, &mut refs);
        let seqs: Vec<u64> = refs.iter().map(|r| r.seq).collect();
        assert_eq!(seqs.len(), 2);
        assert!(seqs.contains(&12) && seqs.contains(&4));
        refs.clear();
        refs_in(&json!("no refs here 1.2.3"), &mut refs);
        assert!(refs.is_empty());
    }

    #[test]
    fn bad_selectors_and_predicates_say_why() {
        assert!(Predicate::parse("refs contains x").unwrap_err().contains("not a selector"));
        assert!(Predicate::parse("$.[ contains x").unwrap_err().contains("JSONPath"));
        assert!(Predicate::parse("/a matches (").unwrap_err().contains("regular expression"));
        assert!(Predicate::parse("/a is 3").unwrap_err().contains("not a predicate"));
        assert!(Selector::parse("header:location", Scope::Body).is_err());
        assert_eq!(Selector::parse("header:Location", Scope::Answer), Ok(Selector::Header("location".into())));
    }

    /// Issue 32: `$..describe` is shown as written; a pointer's escapes are RFC 6901's.
    #[test]
    fn paths_display_as_written_and_pointer_escapes_are_checked() {
        for text in ["$..describe", "$.data[*].describe", "$..['a b']", "$.data[?@._id == '2'].finished"] {
            assert_eq!(Selector::parse(text, Scope::Body).unwrap().to_string(), text);
        }
        for good in ["/a~0b", "/a~1b/~0~1", "/", ""] {
            assert!(Selector::parse(good, Scope::Body).is_ok(), "{good}");
        }
        assert_eq!(pointer_error("/a~2b").map(|(at, _)| at), Some(2));
        assert_eq!(pointer_error("/ok~0/x~").map(|(at, _)| at), Some(7));
        assert_eq!(pointer_error("/é~é").map(|(at, _)| at), Some(3));
        let e = Selector::parse("/a~2b", Scope::Body).unwrap_err();
        assert!(e.contains("`~2` is not an escape"), "{e}");
        assert!(Predicate::parse("count(/a~2b) >= 1").is_err());
    }

    #[test]
    fn captures_from_head_and_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert("location", http::HeaderValue::from_static("/todos/42"));
        let json = json!({"id": 7, "items": [1, 2]});
        let cap = |s: &str| Selector::parse(s, Scope::Answer).expect("parses").capture(201, &headers, Some(&json));
        assert_eq!(cap("header:location").as_deref(), Some("/todos/42"));
        assert_eq!(cap("status").as_deref(), Some("201"));
        assert_eq!(cap("/id").as_deref(), Some("7"));
        assert_eq!(cap("$.items").as_deref(), Some("[1,2]"));
        assert_eq!(cap("header:etag"), None);
    }

    /// Issue 31: `{{key.expected}}` is a sum the harness made: equal within 1e-9, and the
    /// facts parse only for a probe.
    #[test]
    fn an_expected_number_compares_within_rounding() {
        let until = Predicate::parse_probe("/balance == {{key.expected}}").unwrap();
        assert!(until.approximate);
        let json = serde_json::json!({ "balance": 0.1 + 0.2 });
        assert!(until.holds_on(&json, "0.3"));
        assert!(!until.holds_on(&json, "0.31"));
        let exact = Predicate::parse("/balance == 0.3").unwrap();
        assert!(!exact.approximate && !exact.holds_on(&json, "0.3"));
        let count = Predicate::parse_probe("count($[?@.operation=='CREDIT']) >= {{key.acked}}").unwrap();
        let rows = serde_json::json!([{ "operation": "CREDIT" }, { "operation": "DEBIT" }, { "operation": "CREDIT" }]);
        assert!(count.holds_on(&rows, "2") && !count.holds_on(&rows, "3"));
        assert!(Predicate::parse("/balance == {{key.expected}}").unwrap_err().contains("only `[projection] until`"));
    }
}
