//! Does a selector fit the answer it will read? Real read models are lists of objects,
//! quantities, paged lists; a predicate written for a list of plain values silently never
//! holds on them (issue 12). These checks explain the mismatch on a sample answer:
//! `validate --target` reads one answer of each probe query, `run` looks at the last
//! answer of its first late probe.
//!
//! A query on created keys (`keys = "created"`) has no key to read until something is
//! created: `validate --target --write-one` sends one create first (and finds its id by
//! reading when the create has `resolve`), and its queries are read with that id;
//! without it they are named as not checked, with the reason (issue 31, item 6).

use serde_json::Value;

use crate::scenario::redact;
use crate::scenario::selector::{Predicate, Selector, Test};
use crate::scenario::{KeySource, Scenario};
use crate::target::{Request, Target};

/// What to check in a sample answer.
enum Check<'s> {
    Until(&'s Predicate),
    Refs(&'s Selector),
    Value(&'s Selector),
    /// `[verify] count` rows of one command kind.
    Count(&'s str, &'s Selector),
}

impl Check<'_> {
    fn what(&self) -> String {
        match self {
            Check::Until(_) => "[projection] until".into(),
            Check::Refs(_) => "[verify] applied_refs".into(),
            Check::Value(_) => "[verify] value".into(),
            Check::Count(command, _) => format!("[verify] count rows of `{command}`"),
        }
    }

    fn misfit(&self, json: &Value) -> Option<String> {
        match self {
            Check::Until(predicate) => predicate_misfit(predicate, json),
            Check::Refs(selector) | Check::Count(_, selector) => refs_misfit(selector, json),
            Check::Value(selector) => value_misfit(selector, json),
        }
    }
}

/// The key queries on created keys are read with (`--write-one`), or why there is none.
pub type CreatedSample = Result<String, String>;

/// What `validate --target` found: the selectors it checked (and that fit), and a
/// warning per selector that does not fit or could not be checked.
#[derive(Debug, Default)]
pub struct SampleChecks {
    /// What was done to check (`--write-one: sent one …`).
    pub notes: Vec<String>,
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
}

/// Reads one answer of each probe and verify query from `target` (GETs on the first
/// `[mix]` key, and on `created`'s id for queries on created keys: nothing is written
/// here) and says, per selector, that it fits, does not fit, or was not checked and why.
pub async fn check_sample_answers(
    scenario: &Scenario,
    target: &impl Target,
    created: Option<&CreatedSample>,
) -> SampleChecks {
    use rand::SeedableRng as _;
    let mut checks = Vec::new();
    if let Some(p) = &scenario.projection {
        checks.push((p.query, Check::Until(&p.until)));
    }
    if let Some(v) = &scenario.verify {
        checks.extend(v.applied_refs.as_ref().map(|refs| (v.query, Check::Refs(refs))));
        checks.extend(v.values.iter().map(|values| (v.query, Check::Value(&values.read))));
        if let Some(count) = &v.count {
            let rows = count.rows.iter();
            checks.extend(rows.map(|(op, rows)| (count.query, Check::Count(&scenario.operations[*op].name, rows))));
        }
    }
    let mix_key = format!("{}0", scenario.mix.keys.prefix);
    let mut found = SampleChecks::default();
    for (query, check) in checks {
        let op = &scenario.operations[query];
        if op.request.method != http::Method::GET {
            found.warnings.push(format!("{}: `{}` was not sampled (not a GET)", check.what(), op.name));
            continue;
        }
        let key = match (op.keys, created) {
            (KeySource::Mix, _) => mix_key.clone(),
            (KeySource::Created, Some(Ok(id))) => id.clone(),
            (KeySource::Created, Some(Err(why))) => {
                found.warnings.push(format!("{}: `{}` was not checked: {why}", check.what(), op.name));
                continue;
            }
            (KeySource::Created, None) => {
                found.warnings.push(format!(
                    "{}: `{}` was not checked: it reads a created key, and nothing was created to read \
                     ([[setup]] requests create none); pass --write-one to send one create and check on its id",
                    check.what(),
                    op.name
                ));
                continue;
            }
        };
        let captures = Vec::new();
        let ctx = crate::scenario::template::RenderContext { key: &key, op_ref: "", captures: &captures };
        let path = op.request.path.render(&ctx, &mut rand::rngs::SmallRng::seed_from_u64(0));
        let request =
            Request { method: http::Method::GET, path: path.clone(), body: None, headers: Vec::new(), kafka: None };
        let why = match target.send(request).await {
            Err(failure) => Some(format!("no answer ({})", failure.as_str())),
            Ok(reply) if reply.status == 404 => Some("404: the key is not there yet (run the setup first?)".into()),
            Ok(reply) => match serde_json::from_slice::<Value>(&reply.body) {
                Err(_) => Some(format!("the answer (status {}) is not JSON", reply.status)),
                Ok(json) => check.misfit(&json),
            },
        };
        // The path as sent holds resolved `${ENV}` values (a `?token=`): masked (issue 32).
        let shown = redact::mask_all(&redact::redact_query(&path), scenario.secrets.iter().map(String::as_str));
        match why {
            Some(why) => found.warnings.push(format!("{} on `{}` (GET {shown}): {why}", check.what(), op.name)),
            None => found.checked.push(format!("{} on `{}` (GET {shown}): fits", check.what(), op.name)),
        }
    }
    found
}

/// A warning when `predicate` cannot hold on answers shaped like `json`.
pub fn predicate_misfit(predicate: &Predicate, json: &Value) -> Option<String> {
    let selected = predicate.selector.select(json);
    let selector = &predicate.selector;
    if selected.is_empty() {
        return Some(nothing_selected(selector, json));
    }
    let structured = selected.iter().all(|v| v.is_object() || v.is_array());
    match predicate.test {
        Test::Compare(_) | Test::Matches if structured => Some(format!(
            "`{selector}` selects {}, which `{}` cannot compare; select a field of them, e.g. {}",
            describe_many(&selected),
            if predicate.test == Test::Matches { "matches" } else { "==, >=, …" },
            field_hint(selector, &selected)
        )),
        _ => None,
    }
}

/// A warning when `selector` (a number per key, `[verify] value`) selects no number.
pub fn value_misfit(selector: &Selector, json: &Value) -> Option<String> {
    let selected = selector.select(json);
    match selected.first() {
        None => Some(nothing_selected(selector, json)),
        Some(v) if crate::scenario::selector::number(v).is_none() => {
            Some(format!("`{selector}` selects {}, not a number", describe_many(&selected)))
        }
        Some(_) => None,
    }
}

/// A warning when `applied_refs` selects nothing at all.
pub fn refs_misfit(selector: &Selector, json: &Value) -> Option<String> {
    selector.select(json).is_empty().then(|| nothing_selected(selector, json))
}

/// Why `selector` selects nothing in `json` (issue 30): a list it reads that is empty (the
/// read model has nothing yet, not a wrong selector), or the field closest to the one it
/// names, else what the answer holds.
fn nothing_selected(selector: &Selector, json: &Value) -> String {
    let text = selector.to_string();
    let empty_list = match json {
        Value::Array(items) if items.is_empty() => Some("the answer is an empty list".to_owned()),
        Value::Object(fields) => fields
            .iter()
            .find(|(name, value)| value.as_array().is_some_and(Vec::is_empty) && text.contains(name.as_str()))
            .map(|(name, _)| format!("the list `{name}` is empty")),
        _ => None,
    };
    if let Some(empty) = empty_list {
        return format!("`{text}` selects nothing: {empty} (check against a key the read model has data for)");
    }
    let wanted = last_field(&text);
    let mut fields = Vec::new();
    field_names(json, 0, &mut fields);
    let closest = fields
        .iter()
        .filter(|name| **name != wanted)
        .map(|name| (strsim::jaro_winkler(&wanted, name), name))
        .filter(|(similarity, _)| *similarity >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, name)) if !wanted.is_empty() => {
            let at = text.rfind(wanted.as_str()).unwrap_or(text.len());
            let suggestion = format!("{}{name}{}", &text[..at], &text[at + wanted.len()..]);
            format!("`{text}` selects nothing in {}: did you mean `{suggestion}`?", describe(json))
        }
        _ => format!("`{text}` selects nothing in {}", describe(json)),
    }
}

/// The last field a selector names (`/items/0/qty` → `qty`, `$.data[*].describe` → `describe`).
fn last_field(text: &str) -> String {
    let last = text.rsplit(['/', '.', '[']).find(|part| !part.is_empty() && !part.starts_with('*')).unwrap_or("");
    let last = last.trim_matches(|c| c == ']' || c == '\'' || c == '"');
    if last.chars().all(|c| c.is_ascii_digit()) { String::new() } else { last.to_owned() }
}

/// Every field name in an answer, a few levels down (first item of each list), at most 200.
fn field_names(json: &Value, depth: usize, out: &mut Vec<String>) {
    if depth > 4 || out.len() >= 200 {
        return;
    }
    match json {
        Value::Object(fields) => {
            for (name, value) in fields {
                if !out.contains(name) {
                    out.push(name.clone());
                }
                field_names(value, depth + 1, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                field_names(first, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn describe(json: &Value) -> String {
    match json {
        Value::Object(fields) if fields.is_empty() => "an empty object".into(),
        Value::Object(fields) => format!("an object with fields {}", names(fields)),
        Value::Array(items) => format!("a list of {} {}", items.len(), kind(items.first())),
        other => format!("the value {other}"),
    }
}

fn describe_many(values: &[&Value]) -> String {
    format!("{} {}", values.len(), kind(values.first().copied()))
}

fn kind(value: Option<&Value>) -> String {
    match value {
        Some(Value::Object(fields)) => format!("object(s) with fields {}", names(fields)),
        Some(Value::Array(_)) => "list(s)".into(),
        Some(Value::String(_)) => "string(s)".into(),
        Some(Value::Number(_)) => "number(s)".into(),
        Some(Value::Bool(_)) => "boolean(s)".into(),
        Some(Value::Null) => "null(s)".into(),
        None => "values".into(),
    }
}

fn names(fields: &serde_json::Map<String, Value>) -> String {
    let mut names: Vec<String> = fields.keys().take(8).map(|k| format!("`{k}`")).collect();
    if fields.len() > 8 {
        names.push("…".into());
    }
    names.join(", ")
}

fn field_hint(selector: &Selector, selected: &[&Value]) -> String {
    let field = selected.iter().find_map(|v| v.as_object()?.keys().next().cloned()).unwrap_or_else(|| "FIELD".into());
    match selector {
        Selector::Path { text, .. } => format!("`{text}[*].{field}`"),
        other => format!("`$…{}[*].{field}`", other.to_string().replace('/', ".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explains_predicates_that_cannot_hold() {
        let answer = json!({"data": [{"_id": "1", "describe": "x"}]});
        let misfit = |p: &str| predicate_misfit(&Predicate::parse(p).expect("parses"), &answer);
        assert!(
            misfit("/refs contains {{ref}}")
                .expect("misfit")
                .contains("selects nothing in an object with fields `data`")
        );
        let objects = misfit("$.data == {{ref}}").expect("misfit");
        assert!(objects.contains("1 object(s) with fields `_id`, `describe`"), "{objects}");
        assert_eq!(misfit("/data contains {{ref}}"), None, "contains looks inside objects");
        assert_eq!(misfit("$.data[*].describe == {{ref}}"), None);
        let number = Selector::parse("/data", crate::scenario::selector::Scope::Body).expect("parses");
        assert!(value_misfit(&number, &answer).expect("misfit").contains("not a number"));
    }

    /// Issue 30: an empty list is called empty; a near miss names the closest field.
    #[test]
    fn says_the_list_is_empty_or_names_the_closest_field() {
        let parse = |s: &str| Selector::parse(s, crate::scenario::selector::Scope::Body).expect("parses");
        let empty = refs_misfit(&parse("$.data[*].describe"), &json!({"data": [], "total": 0})).expect("misfit");
        assert!(empty.contains("the list `data` is empty"), "{empty}");
        let empty = refs_misfit(&parse("$[*].ref"), &json!([])).expect("misfit");
        assert!(empty.contains("the answer is an empty list"), "{empty}");
        let fields: serde_json::Map<String, Value> =
            (0..12).map(|i| (format!("field_{i}"), json!(i))).chain([("qty_on_hand".into(), json!(3))]).collect();
        let near = value_misfit(&parse("/qty"), &Value::Object(fields)).expect("misfit");
        assert!(near.contains("did you mean `/qty_on_hand`?"), "{near}");
        let nested = refs_misfit(&parse("$.items[*].reff"), &json!({"items": [{"ref": "a"}]})).expect("misfit");
        assert!(nested.contains("did you mean `$.items[*].ref`?"), "{nested}");
    }
}
