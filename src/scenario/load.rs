//! Scenario text → checked `Scenario`: `--set` overrides on the TOML document, serde
//! into `RawScenario` (unknown keys rejected), then every value checked and resolved
//! with its location at hand: durations, templates, `${ENV}` values, names that refer
//! to other sections, SLO keys.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::error::ScenarioError;
use super::limits;
use super::raw::*;
use super::template::Template;
use super::*;
use crate::reference::{Faults, MemoryConfig, ProjectorWork, SlowCommands, Window};

mod backlog;
mod facts;
mod planning;
mod resolve;
mod staleness;
pub use planning::{MAX_PROJECTORS, parse_projector_counts};

/// Reads, overrides and checks the scenario at `path`.
pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let bytes = std::fs::read(path).map_err(|source| ScenarioError::Io { path: path.to_owned(), source })?;
    load_bytes(bytes, path, overrides)
}

/// Like [`load`], from the bytes of a file already read (`path` names it in errors).
pub fn load_bytes(bytes: Vec<u8>, path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    // Invalid UTF-8 is located like any other error (issue 18: it had no line).
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let shown = String::from_utf8_lossy(e.as_bytes()); // same bytes up to `at`
        ScenarioError::at(path, &shown, at..at + 1, "invalid UTF-8: a scenario file is UTF-8 text")
            .with_hint("save the file as UTF-8")
    })?;
    load_str(&text, path, overrides)
}

/// Like [`load`], from text already read (`path` names it in errors).
pub fn load_str(text: &str, path: &Path, overrides: &[String]) -> Result<Scenario, ScenarioError> {
    let text = apply_overrides(text, path, overrides)?;
    let set = overridden_spans(&text, overrides);
    checked(&text, path).map_err(|e| blame_override(e, &set))
}

/// Parses and checks the scenario text (overrides applied).
fn checked(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ScenarioError::at(path, text, span, e.message().trim_end().to_owned())
    })?;
    let recorded: toml::Table = toml::from_str(text)
        .map_err(|e| ScenarioError::at(path, text, e.span().unwrap_or(0..0), e.message().to_owned()))?;
    let mut recorded = serde_json::to_value(&recorded).unwrap_or(serde_json::Value::Null);
    super::redact::redact_recorded(&mut recorded);
    let checker = Checker { path, text, secrets: Default::default() };
    let checked = checker.check(raw, recorded);
    // A message may quote a resolved value (`…` is not an HTTP method): masked (issue 32).
    checked.map_err(|error| match error {
        ScenarioError::Located(mut located) => {
            let secrets = checker.secrets.borrow();
            located.message = super::redact::mask_all(&located.message, secrets.iter().map(String::as_str));
            ScenarioError::Located(located)
        }
        other => other,
    })
}

// ---------------------------------------------------------------- overrides

/// Where each `--set` sits in the overridden text (its key, when it has one, to the end of
/// its value), by its argument.
fn overridden_spans(text: &str, overrides: &[String]) -> Vec<(std::ops::Range<usize>, String)> {
    let Ok(doc) = toml_edit::Document::parse(text) else { return Vec::new() };
    overrides
        .iter()
        .filter_map(|arg| {
            let (key, _) = arg.split_once('=')?;
            let (mut item, mut key_start) = (doc.as_item(), None);
            for part in key.trim().split('.') {
                key_start = item.as_table_like().and_then(|t| t.key(part)?.span()).map(|s| s.start);
                item = match part.parse::<usize>() {
                    Ok(index) => item.get(index)?,
                    Err(_) => item.get(part)?,
                };
            }
            let value = item.span()?;
            Some((key_start.unwrap_or(value.start)..value.end, arg.clone()))
        })
        .collect()
}

/// An error about a value a `--set` put there is about that `--set`, not about a line of
/// the file (which does not hold the value).
fn blame_override(error: ScenarioError, set: &[(std::ops::Range<usize>, String)]) -> ScenarioError {
    let ScenarioError::Located(located) = &error else { return error };
    let within = |span: &std::ops::Range<usize>| span.start <= located.span.start && located.span.end <= span.end;
    if let Some((_, arg)) = set.iter().find(|(span, _)| within(span)) {
        return error.on_override(arg);
    }
    // An error about a table a `--set` changed (a stage given `rate` beside `from`/`to`):
    // the line shown holds the set value, which the file does not; say where it came from.
    let overlaps = |span: &std::ops::Range<usize>| span.start < located.span.end && located.span.start < span.end;
    let changed: Vec<&str> = set.iter().filter(|(span, _)| overlaps(span)).map(|(_, arg)| arg.as_str()).collect();
    if changed.is_empty() {
        return error;
    }
    let mut error = error;
    if let ScenarioError::Located(located) = &mut error {
        let sets = changed.iter().map(|arg| format!("`--set {arg}`")).collect::<Vec<_>>().join(", ");
        located.message = format!("{} (as changed by {sets})", located.message);
    }
    error
}

fn apply_overrides(text: &str, path: &Path, overrides: &[String]) -> Result<String, ScenarioError> {
    if overrides.is_empty() {
        return Ok(text.to_owned());
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        ScenarioError::at(path, text, e.span().unwrap_or(0..0), e.message().trim_end().to_owned())
    })?;
    for arg in overrides {
        let bad = |message: String| ScenarioError::Override { arg: arg.clone(), message };
        let (key, value) =
            arg.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, e.g. load.stages.0.rate=500".into()))?;
        let parts: Vec<&str> = key.trim().split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("the key is a dotted path such as `load.warmup` or `command.0.weight`".into()));
        }
        // A TOML value when it reads as one (500, "5s", true, [1, 2]), else a string.
        let value = value.trim();
        let value = value.parse::<toml_edit::Value>().unwrap_or_else(|_| toml_edit::Value::from(value));
        set_in_item(doc.as_item_mut(), &parts, value).map_err(bad)?;
    }
    Ok(doc.to_string())
}

fn set_in_item(item: &mut toml_edit::Item, parts: &[&str], value: toml_edit::Value) -> Result<(), String> {
    match item {
        toml_edit::Item::Table(table) => set_in_table(table, parts, value),
        toml_edit::Item::ArrayOfTables(tables) => {
            let (index, rest) = index_of(parts, tables.len())?;
            let table = tables.get_mut(index).expect("index checked");
            if rest.is_empty() {
                return Err(format!("`{}` is a whole table; set one of its keys", parts[0]));
            }
            set_in_table(table, rest, value)
        }
        toml_edit::Item::Value(v) => set_in_value(v, parts, value),
        toml_edit::Item::None => Err(format!("no `{}` here", parts[0])),
    }
}

fn set_in_table(table: &mut toml_edit::Table, parts: &[&str], value: toml_edit::Value) -> Result<(), String> {
    let (head, rest) = parts.split_first().expect("non-empty path");
    if rest.is_empty() {
        table.insert(head, toml_edit::Item::Value(value));
        return Ok(());
    }
    let child =
        table.get_mut(head).ok_or_else(|| format!("the scenario has no `{head}` to set `{}` in", rest.join(".")))?;
    set_in_item(child, rest, value)
}

fn set_in_value(target: &mut toml_edit::Value, parts: &[&str], value: toml_edit::Value) -> Result<(), String> {
    match target {
        toml_edit::Value::InlineTable(table) => {
            let (head, rest) = parts.split_first().expect("non-empty path");
            if rest.is_empty() {
                table.insert(*head, value);
                return Ok(());
            }
            let child = table.get_mut(head).ok_or_else(|| format!("no `{head}` here"))?;
            set_in_value(child, rest, value)
        }
        toml_edit::Value::Array(array) => {
            let (index, rest) = index_of(parts, array.len())?;
            if rest.is_empty() {
                array.replace(index, value);
                return Ok(());
            }
            set_in_value(array.get_mut(index).expect("index checked"), rest, value)
        }
        _ => Err(format!("`{}` is not a table or a list", parts.join("."))),
    }
}

fn index_of<'a, 'b>(parts: &'a [&'b str], len: usize) -> Result<(usize, &'a [&'b str]), String> {
    let (head, rest) = parts.split_first().expect("non-empty path");
    match head.parse::<usize>() {
        Ok(i) if i < len => Ok((i, rest)),
        Ok(i) => Err(format!("index {i} is out of range: the list has {len} entries")),
        Err(_) => Err(format!("`{head}`: expected an index into a list of {len}")),
    }
}

// ---------------------------------------------------------------- checks

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    /// The `${ENV}` values read so far (`Scenario::secrets`).
    secrets: std::cell::RefCell<Vec<String>>,
}

type Result<T, E = ScenarioError> = std::result::Result<T, E>;

impl Checker<'_> {
    fn error<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::at(self.path, self.text, spanned.span(), message)
    }

    /// A header name HTTP accepts (issue 18: `X-Tést` passed `validate` and failed the
    /// run); the error points at its value (the key has no span of its own).
    fn header_name(&self, name: &str, value: &Spanned<String>) -> Result<String> {
        http::HeaderName::try_from(name).map_err(|_| {
            self.error(value, format!("header `{name}`: not a valid HTTP header name"))
                .with_hint("a header name is ASCII letters, digits and `-` (e.g. X-Test)")
        })?;
        Ok(name.to_owned())
    }

    /// A string value with `${ENV}` references resolved; the values are kept as secrets.
    fn string(&self, value: &Spanned<String>) -> Result<String> {
        let mut secrets = self.secrets.borrow_mut();
        interpolate(value.get_ref(), &mut secrets).map_err(|name| {
            self.error(value, format!("environment variable `{name}` is not set"))
                .with_hint(format!("export {name}=… before the run"))
        })
    }

    /// A shell command (`[[action]] exec`, `[capacity] scale`): `${NAME}` kept in the text
    /// and passed to `sh` as a variable, never pasted (issue 32; see `scenario::shell`).
    fn shell_command(&self, value: &Spanned<String>) -> Result<ShellCommand> {
        let command = ShellCommand::parse(value.get_ref(), |name| std::env::var(name).ok())
            .map_err(|e| self.error(value, e.message).with_hint(e.hint))?;
        self.secrets.borrow_mut().extend(command.values().map(str::to_owned));
        Ok(command)
    }

    /// A duration string, at most `limits::MAX_DURATION` (issue 16: a longer one reached
    /// `Duration` arithmetic that panics). `${ENV}` in it is no secret (a number and a unit).
    fn duration(&self, value: &Spanned<String>) -> Result<Duration> {
        let text = interpolate(value.get_ref(), &mut Vec::new()).map_err(|name| {
            self.error(value, format!("environment variable `{name}` is not set"))
                .with_hint(format!("export {name}=… before the run"))
        })?;
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            self.error(value, format!("`{text}` is not a duration ({e})"))
                .with_hint("write a number and a unit, e.g. \"250ms\", \"30s\", \"5m\"")
        })?;
        self.bounded_duration(value, &text, duration)
    }

    fn bounded_duration<T>(&self, at: &Spanned<T>, text: &str, duration: Duration) -> Result<Duration> {
        if duration > limits::MAX_DURATION {
            return Err(self
                .error(at, format!("`{}` is too long", text.trim()))
                .with_hint(format!("a duration is at most {}", limits::MAX_DURATION_TEXT)));
        }
        Ok(duration)
    }

    fn duration_or(&self, value: &Option<Spanned<String>>, default: Duration) -> Result<Duration> {
        value.as_ref().map_or(Ok(default), |v| self.duration(v))
    }

    fn template(&self, value: &Spanned<String>) -> Result<Template> {
        let text = self.string(value)?;
        Template::compile(&text).map_err(|e| {
            // From the `{{` to its `}}` in the compiled text, back through `${ENV}` values
            // and the literal's escapes to the file (issue 32).
            let end = text[e.offset..].find("}}").map_or(text.len(), |i| e.offset + i + 2);
            let written = |offset| before_interpolation(value.get_ref(), offset);
            let span = self.inside(value, written(e.offset)..written(end));
            ScenarioError::at(self.path, self.text, span, format!("template error: {}", e.message))
        })
    }

    /// The bytes of the file that wrote bytes `range` of string `value` as decoded (issue
    /// 32: offsets in the decoded value are not offsets in the file).
    fn inside(&self, value: &Spanned<String>, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let span = value.span();
        let start = super::literal::source_offset(self.text, &span, value.get_ref(), range.start);
        let end = super::literal::source_offset(self.text, &span, value.get_ref(), range.end);
        start..end.max(start)
    }

    /// A JSON pointer's bad escape, pointed at inside `value` (`pointer` is a part of it).
    fn pointer(&self, value: &Spanned<String>, pointer: &str) -> Result<()> {
        let Some((at, why)) = selector::pointer_error(pointer) else { return Ok(()) };
        let offset = pointer.as_ptr() as usize - value.get_ref().as_ptr() as usize + at;
        let span = self.inside(value, offset..offset + 2);
        Err(ScenarioError::at(self.path, self.text, span, why)
            .with_hint("in a JSON pointer, `~0` stands for `~` and `~1` for `/` inside a name"))
    }

    fn check(&self, raw: RawScenario, recorded: serde_json::Value) -> Result<Scenario> {
        let name = raw.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(self.error(&raw.name, "the scenario needs a name"));
        }
        let seed = raw.seed.unwrap_or(0);
        let target = self.target(&raw.target, seed)?;
        let load = self.load(&raw.load)?;
        let mix = self.mix(&raw.mix)?;
        let setup = raw.setup.iter().map(|s| self.setup(s, mix.keys.count)).collect::<Result<Vec<_>>>()?;
        let mut operations = Vec::new();
        for (kind, ops) in [(OpKind::Command, &raw.command), (OpKind::Query, &raw.query)] {
            for op in ops {
                if operations.iter().any(|o: &OperationSpec| o.name == *op.name.get_ref()) {
                    return Err(self
                        .error(&op.name, format!("a second operation named `{}`", op.name.get_ref()))
                        .with_hint("operation names must be unique"));
                }
                operations.push(self.operation(op, kind)?);
            }
        }
        if operations.is_empty() {
            return Err(ScenarioError::at(
                self.path,
                self.text,
                0..0,
                "the scenario has no [[command]] and no [[query]]",
            ));
        }
        let has = |kind| operations.iter().any(|o: &OperationSpec| o.kind == kind && o.weight > 0);
        if let Some(ratio) = &raw.mix.read_write_ratio
            && ((mix.reads > 0 && !has(OpKind::Query) && mix.writes == 0)
                || (mix.writes > 0 && !has(OpKind::Command) && mix.reads == 0))
        {
            return Err(self.error(
                ratio,
                "the ratio asks for operations of a kind the scenario does not define (or all have weight 0)",
            ));
        }
        if !has(OpKind::Query) && !has(OpKind::Command) {
            return Err(ScenarioError::at(self.path, self.text, 0..0, "every operation has weight 0"));
        }
        self.created_keys(&raw, &operations)?;
        self.request_bytes_in_flight(&raw, &load, &operations)?;
        if raw.mix.keys.is_none() {
            self.no_key_drawn(&raw, &operations, &setup)?;
        }
        let projection = raw.projection.as_ref().map(|p| self.projection(p, &operations)).transpose()?;
        let verify = raw.verify.as_ref().map(|v| self.verify(v, &operations)).transpose()?;
        if let (Some(raw), Some(spec)) = (&raw.projection, &projection) {
            self.check_probe_facts(raw, spec, verify.as_ref(), &operations)?;
        }
        if let Some(raw) = &raw.staleness {
            self.check_staleness_facts(raw, projection.as_ref())?;
        }
        let staleness =
            raw.staleness.as_ref().map(|s| self.staleness(s, &operations, projection.as_ref())).transpose()?;
        self.resolves(&raw, &mut operations, projection.as_ref(), staleness.as_ref())?;
        let bus = raw.bus.as_ref().map(|b| self.bus(b.get_ref(), target.timeout)).transpose()?;
        if bus.is_none()
            && let Some(op) = raw.command.iter().find(|c| c.kafka.is_some())
        {
            return Err(self
                .error(
                    op.kafka.as_ref().expect("found"),
                    "a command sent over Kafka needs a [bus] section: its brokers and client settings",
                )
                .with_hint("add [bus] kind = \"kafka\", brokers = \"HOST:PORT\", topic = \"EVENTS\""));
        }
        if let Some(group) = raw.projection.as_ref().and_then(|p| p.get_ref().stages.as_ref()?.get_ref().group.as_ref())
        {
            let groups = bus.as_ref().map(|b| b.consumer_groups.as_slice()).unwrap_or_default();
            if !groups.contains(group.get_ref()) {
                return Err(self
                    .error(
                        group,
                        format!("`{}` is not among the [bus] consumer_groups the probe samples", group.get_ref()),
                    )
                    .with_hint("add it to [bus] consumer_groups (its committed offsets mark an event consumed)"));
            }
        }
        let backlog = self.backlogs(&raw.backlog)?;
        // A `[bus]` consumer group is a backlog source named after the group (issue 33):
        // a `[[backlog]]` of that name would share its plots and timeline column.
        let groups = bus.as_ref().map(|b| b.consumer_groups.as_slice()).unwrap_or_default();
        if let Some((spec, table)) = backlog.iter().zip(&raw.backlog).find(|(spec, _)| groups.contains(&spec.name)) {
            let at = table.get_ref().name.as_ref().map_or(table.span(), |n| n.span());
            return Err(ScenarioError::at(
                self.path,
                self.text,
                at,
                format!("[[backlog]] `{}` is named like a [bus] consumer group, whose lag is a backlog too", spec.name),
            )
            .with_hint("give this [[backlog]] another `name`"));
        }
        let actions = raw.action.iter().map(|a| self.action(a)).collect::<Result<Vec<_>>>()?;
        let slo = raw.slo.iter().map(|(k, v)| self.slo(k, v, &operations)).collect::<Result<Vec<_>>>()?;
        let slo_keys: Vec<&Spanned<String>> = raw.slo.keys().collect();
        // A `[bus]` consumer group is a backlog source too (kind `kafka`).
        let groups = bus.as_ref().is_some_and(|b| !b.consumer_groups.is_empty());
        if backlog.is_empty()
            && !groups
            && let Some((key, _)) = slo_keys
                .iter()
                .zip(&slo)
                .find(|(_, rule)| matches!(rule.metric, SloMetric::BacklogMax | SloMetric::BacklogDrain))
        {
            return Err(self
                .error(
                    key,
                    format!("`{}` judges the [[backlog]] sources and [bus] consumer groups, and there is none", key.get_ref()),
                )
                .with_hint("add [[backlog]] kind = \"redis-streams\", url = \"redis://HOST:6379\", stream = \"…\", group = \"…\""));
        }
        self.check_staleness_slos(&slo_keys, &slo, staleness.as_ref())?;
        let saturate = raw.saturate.as_ref().map(|s| self.saturate(s)).transpose()?.unwrap_or_default();
        let capacity = self.capacity(raw.capacity.as_ref(), &target.kind)?;
        Ok(Scenario {
            name,
            description: raw.description.clone(),
            seed,
            target,
            load,
            mix,
            setup,
            operations,
            projection,
            staleness,
            verify,
            bus,
            backlog,
            actions,
            slo,
            saturate,
            capacity,
            recorded,
            secrets: self.secrets.take(),
            source: self.path.to_owned(),
        })
    }

    fn target(&self, raw: &RawTarget, seed: u64) -> Result<TargetSpec> {
        let timeout = self.duration_or(&raw.timeout, Duration::from_secs(5))?;
        if timeout.is_zero() {
            return Err(
                self.error(raw.timeout.as_ref().expect("zero only when set"), "the timeout must be more than zero")
            );
        }
        let max_body = raw.max_body.as_ref().map_or(Ok(limits::DEFAULT_MAX_BODY), |m| self.size(m))?;
        let headers = raw
            .headers
            .iter()
            .map(|(k, v)| Ok((self.header_name(k, v)?, self.template(v)?)))
            .collect::<Result<Vec<_>>>()?;
        let embedded_only =
            |field: &Option<Spanned<String>>| field.as_ref().map(|f| self.error(f, "only for kind = \"embedded\""));
        let kind = match raw.kind.get_ref().as_str() {
            "http" => {
                if let Some(e) =
                    [&raw.variant, &raw.projector_cost, &raw.projector_contention].into_iter().find_map(embedded_only)
                {
                    return Err(e);
                }
                if let Some(f) = &raw.faults {
                    return Err(self.error(
                        f,
                        "faults are injected by the embedded target only; for `target serve` pass fault flags",
                    ));
                }
                let url =
                    raw.base_url.as_ref().ok_or_else(|| self.error(&raw.kind, "kind = \"http\" needs base_url"))?;
                let base_url = self.string(url)?;
                let label = super::redact::redact_urls(url.get_ref());
                if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                    return Err(self.error(url, format!("`{label}` is not an http:// URL")));
                }
                TargetKind::Http { base_url, label }
            }
            "embedded" => {
                if let Some(variant) = &raw.variant
                    && variant.get_ref() != "memory"
                {
                    return Err(self.error(
                        variant,
                        format!("unknown embedded variant `{}`: expected `memory`", variant.get_ref()),
                    ));
                }
                let projectors = raw.projectors.as_ref().map_or(Ok(2), |p| match *p.get_ref() {
                    1..=1024 => Ok(*p.get_ref() as usize),
                    _ => Err(self.error(p, "projectors must be between 1 and 1024")),
                })?;
                let faults = match &raw.faults {
                    Some(f) => self.faults(f.get_ref())?,
                    None => Faults { checkpoint_every: 100, idempotent: true, ..Faults::default() },
                };
                let work = ProjectorWork {
                    cost: self.duration_or(&raw.projector_cost, Duration::ZERO)?,
                    contention: self.duration_or(&raw.projector_contention, Duration::ZERO)?,
                };
                TargetKind::Embedded(Box::new(MemoryConfig { projectors, seed, faults, work }))
            }
            other => {
                return Err(
                    self.error(&raw.kind, format!("unknown target kind `{other}`: expected `http` or `embedded`"))
                );
            }
        };
        Ok(TargetSpec { kind, timeout, max_body, headers })
    }

    /// `max_body`: a byte count or a size string, 1 byte to `limits::MAX_BODY`.
    fn size(&self, value: &Spanned<toml::Value>) -> Result<usize> {
        let bytes = match value.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).ok(),
            toml::Value::String(text) => limits::parse_size(text),
            _ => None,
        };
        let hint = "write a byte count or a size such as \"64KiB\" or \"1MiB\", from 1 byte to 1 GiB";
        match bytes {
            Some(n) if n >= 1 && n <= limits::MAX_BODY as u64 => Ok(n as usize),
            Some(_) => Err(self.error(value, "max_body is out of range").with_hint(hint)),
            None => Err(self.error(value, "max_body is not a size").with_hint(hint)),
        }
    }

    fn faults(&self, raw: &RawFaults) -> Result<Faults> {
        let every = |v: &Option<Spanned<u64>>| -> Result<Option<u64>> {
            match v {
                Some(n) if *n.get_ref() == 0 => Err(self.error(n, "must be 1 or more")),
                Some(n) => Ok(Some(*n.get_ref())),
                None => Ok(None),
            }
        };
        let window = |w: &Option<RawWindow>| -> Result<Option<Window>> {
            w.as_ref()
                .map(|w| Ok(Window { at: self.duration(&w.at)?, duration: self.duration(&w.duration)? }))
                .transpose()
        };
        Ok(Faults {
            projection_delay: self.duration_or(&raw.projection_delay, Duration::ZERO)?,
            projection_jitter: self.duration_or(&raw.projection_jitter, Duration::ZERO)?,
            drop_every: every(&raw.drop_every)?,
            duplicate_every: every(&raw.duplicate_every)?,
            reorder_window: match &raw.reorder_window {
                Some(n) if *n.get_ref() > limits::MAX_REORDER_WINDOW => {
                    return Err(self
                        .error(n, "reorder_window is too large")
                        .with_hint(format!("from 1 to {} events", limits::MAX_REORDER_WINDOW)));
                }
                _ => every(&raw.reorder_window)?.map(|n| n as usize),
            },
            pause_projector: window(&raw.pause_projector)?,
            crash_projector_at: raw.crash_projector_at.as_ref().map(|d| self.duration(d)).transpose()?,
            checkpoint_every: every(&raw.checkpoint_every)?.unwrap_or(100),
            idempotent: raw.idempotent.unwrap_or(true),
            slow_commands: raw
                .slow_commands
                .as_ref()
                .map(|s| {
                    let every = every(&Some(s.every.clone()))?.expect("given");
                    Ok(SlowCommands { every, delay: self.duration(&s.delay)? })
                })
                .transpose()?,
            fail_every: every(&raw.fail_every)?,
            stall: window(&raw.stall)?,
        })
    }

    fn load(&self, raw: &RawLoad) -> Result<LoadSpec> {
        let model = match raw.model.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("open") => {
                if let Some(t) = &raw.think_time {
                    return Err(self.error(t, "think_time is for model = \"closed\""));
                }
                let max_in_flight = raw.max_in_flight.as_ref().map_or(Ok(1024), |m| match *m.get_ref() {
                    n @ 1..=limits::MAX_IN_FLIGHT => Ok(n as usize),
                    _ => Err(self
                        .error(m, "max_in_flight is out of range")
                        .with_hint(format!("from 1 to {}", limits::MAX_IN_FLIGHT))),
                })?;
                let max_backlog = raw.max_backlog.as_ref().map_or(Ok(100_000), |m| match *m.get_ref() {
                    n @ 0..=limits::MAX_BACKLOG => Ok(n as usize),
                    _ => Err(self
                        .error(m, "max_backlog is out of range")
                        .with_hint(format!("from 0 to {}", limits::MAX_BACKLOG))),
                })?;
                LoadModel::Open { max_in_flight, max_backlog }
            }
            Some("closed") => {
                if let Some(field) = [&raw.max_in_flight, &raw.max_backlog].into_iter().flatten().next() {
                    return Err(self
                        .error(field, "for model = \"open\" only: the closed model's concurrency is its user count"));
                }
                LoadModel::Closed { think_time: self.duration_or(&raw.think_time, Duration::ZERO)? }
            }
            Some(other) => {
                return Err(self.error(
                    raw.model.as_ref().expect("matched"),
                    format!("unknown load model `{other}`: expected `open` or `closed`"),
                ));
            }
        };
        let closed = matches!(model, LoadModel::Closed { .. });
        let stages = raw.stages.get_ref().iter().map(|s| self.stage(s, closed)).collect::<Result<Vec<_>>>()?;
        if stages.is_empty() {
            return Err(
                self.error(&raw.stages, "at least one stage is needed, e.g. { duration = \"30s\", rate = 100 }")
            );
        }
        // Checked: a sum that overflows panicked in `Scenario::load_duration` (issue 16).
        let total = stages
            .iter()
            .try_fold(Duration::ZERO, |sum, s| sum.checked_add(s.duration))
            .filter(|total| *total <= limits::MAX_LOAD)
            .ok_or_else(|| {
                self.error(&raw.stages, "the stages together are too long")
                    .with_hint(format!("the load lasts at most {} in all", limits::MAX_DURATION_TEXT))
            })?;
        let warmup = self.duration_or(&raw.warmup, Duration::ZERO)?;
        if warmup >= total {
            return Err(self.error(
                raw.warmup.as_ref().expect("non-zero only when set"),
                format!("warmup ({warmup:?}) must be shorter than the stages ({total:?})"),
            ));
        }
        Ok(LoadSpec { model, warmup, stages })
    }

    /// One stage; `closed`: its rates are user counts.
    fn stage(&self, raw: &Spanned<RawStage>, closed: bool) -> Result<Stage> {
        let stage = raw.get_ref();
        let duration = self.duration(&stage.duration)?;
        if duration.is_zero() {
            return Err(self.error(&stage.duration, "a stage must last more than zero"));
        }
        let (from, to) = match (stage.rate, stage.from, stage.to) {
            (Some(rate), None, None) => (rate, rate),
            (None, Some(from), Some(to)) => (from, to),
            _ => {
                return Err(self.error(raw, "a stage has either `rate` (constant) or `from` and `to` (linear ramp)"));
            }
        };
        if !(from.is_finite() && to.is_finite() && from >= 0.0 && to >= 0.0) {
            return Err(self.error(raw, "rates must be zero or more"));
        }
        for rate in [from, to] {
            if closed {
                if rate > limits::MAX_USERS {
                    return Err(self
                        .error(raw, format!("{rate} users is too many"))
                        .with_hint(format!("a closed-model stage has 0 to {} users", limits::MAX_USERS)));
                }
            } else if let Err(message) = limits::check_rate(rate, true) {
                // Above the bound the schedule never ends (issue 16: `--rate 1e308`).
                return Err(self.error(raw, message).with_hint(format!(
                    "0 pauses the load; otherwise from {} to {:.0} operations/s",
                    limits::MIN_RATE,
                    limits::MAX_RATE
                )));
            }
        }
        Ok(Stage { duration, from, to })
    }

    /// Without `[mix] keys`, an operation or setup that reads `{{key}}` from the mix has
    /// nothing to draw from: a located error at its path.
    fn no_key_drawn(&self, raw: &RawScenario, operations: &[OperationSpec], setup: &[SetupSpec]) -> Result<()> {
        let raw_ops = raw.command.iter().chain(&raw.query);
        for (op, raw_op) in operations.iter().zip(raw_ops) {
            if op.keys == KeySource::Mix && !op.is_keyless() {
                let message = format!("`{}` reads {{{{key}}}}, but [mix] has no `keys` to draw it from", op.name);
                let error = match &raw_op.path {
                    Some(path) => self.error(path, message),
                    None => self.error(&raw_op.name, message),
                };
                return Err(error
                    .with_hint("add [mix] keys = { count = 1000, prefix = \"acct-\" }, or keys = \"created\" for ids a create made"));
            }
        }
        for (spec, raw_setup) in setup.iter().zip(&raw.setup) {
            if spec.request.templates().any(|t| t.uses_key()) {
                return Err(self
                    .error(&raw_setup.path, "[[setup]] runs once per [mix] key, but [mix] has no `keys`")
                    .with_hint("add [mix] keys = { count = 1000, prefix = \"acct-\" }"));
            }
        }
        Ok(())
    }

    fn mix(&self, raw: &RawMix) -> Result<MixSpec> {
        let (reads, writes) = match &raw.read_write_ratio {
            None => (1, 1),
            Some(ratio) => {
                let parsed = ratio
                    .get_ref()
                    .split_once(':')
                    .and_then(|(r, w)| Some((r.trim().parse::<u32>().ok()?, w.trim().parse::<u32>().ok()?)));
                match parsed {
                    Some((0, 0)) | None => {
                        return Err(self
                            .error(ratio, format!("`{}` is not a ratio", ratio.get_ref()))
                            .with_hint("write \"READS:WRITES\" with whole numbers, e.g. \"4:1\""));
                    }
                    Some(pair) => pair,
                }
            }
        };
        // No `keys`: nothing may draw one (checked once the operations are known); a
        // single key that is never drawn keeps the rest of the harness unchanged.
        let Some(raw_keys) = &raw.keys else {
            let keys = KeySpec { count: 1, distribution: KeyDistribution::Uniform, prefix: String::new() };
            return Ok(MixSpec { reads, writes, keys });
        };
        let keys = raw_keys.get_ref();
        let count = *keys.count.get_ref();
        if count == 0 {
            return Err(self.error(&keys.count, "at least one key is needed"));
        }
        let distribution = match keys.distribution.as_ref().map(|d| d.get_ref().as_str()) {
            None | Some("uniform") => KeyDistribution::Uniform,
            Some("zipf") => {
                let exponent = keys.exponent.unwrap_or(1.0);
                if !(exponent > 0.0 && exponent <= limits::MAX_ZIPF_EXPONENT) {
                    return Err(self
                        .error(raw_keys, "zipf needs exponent > 0")
                        .with_hint(format!("an exponent in (0, {}]; 1.1 is typical", limits::MAX_ZIPF_EXPONENT)));
                }
                KeyDistribution::Zipf { exponent }
            }
            Some("hotspot") => {
                let hot_fraction = keys.hot_fraction.unwrap_or(0.2);
                let hot_traffic = keys.hot_traffic.unwrap_or(0.8);
                if !((0.0..=1.0).contains(&hot_fraction) && (0.0..=1.0).contains(&hot_traffic)) {
                    return Err(self.error(raw_keys, "hot_fraction and hot_traffic are fractions between 0 and 1"));
                }
                KeyDistribution::Hotspot { hot_fraction, hot_traffic }
            }
            Some("sequential") => KeyDistribution::Sequential,
            Some("latest") => KeyDistribution::Latest,
            Some(other) => {
                return Err(self.error(
                    keys.distribution.as_ref().expect("matched"),
                    format!("unknown distribution `{other}`: expected uniform, zipf, hotspot, sequential or latest"),
                ));
            }
        };
        Ok(MixSpec { reads, writes, keys: KeySpec { count, distribution, prefix: keys.prefix.clone() } })
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &Option<Spanned<String>>,
        default_method: http::Method,
        path: &Spanned<String>,
        body: &Option<Spanned<String>>,
        headers: &std::collections::BTreeMap<String, Spanned<String>>,
        expect_status: &[u16],
        reject_status: &[u16],
        capture: &std::collections::BTreeMap<String, Spanned<toml::Value>>,
    ) -> Result<RequestSpec> {
        let method = match method {
            None => default_method,
            Some(m) => http::Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| self.error(m, format!("`{}` is not an HTTP method", m.get_ref())))?,
        };
        if !path.get_ref().starts_with('/') {
            return Err(self.error(path, "a path starts with `/` (the base URL comes from [target])"));
        }
        for status in expect_status.iter().chain(reject_status) {
            if !(100..=599).contains(status) {
                return Err(self.error(path, format!("status {status} is not an HTTP status")));
            }
        }
        let captures =
            capture.iter().map(|(name, value)| Ok((name.clone(), self.capture(value)?))).collect::<Result<Vec<_>>>()?;
        Ok(RequestSpec {
            method,
            path: self.template(path)?,
            body: body.as_ref().map(|b| self.template(b)).transpose()?,
            headers: headers
                .iter()
                .map(|(k, v)| Ok((self.header_name(k, v)?, self.template(v)?)))
                .collect::<Result<Vec<_>>>()?,
            expect_status: expect_status.to_vec(),
            reject_status: reject_status.to_vec(),
            reject: None,
            conflict: None,
            captures,
            kafka: None,
        })
    }

    /// `{ status = [...], body = "regex" }` of `reject` or `conflict`.
    fn answer_rule(&self, raw: &Spanned<RawAnswerRule>) -> Result<AnswerRule> {
        let hint = "{ status = [409, 400], body = \"concurrent|duplicate key\" } (body optional)";
        let rule = raw.get_ref();
        if rule.status.is_empty() {
            return Err(self.error(raw, "`status` lists at least one status").with_hint(hint));
        }
        if let Some(status) = rule.status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(self.error(raw, format!("status {status} is not an HTTP status")).with_hint(hint));
        }
        let body = rule
            .body
            .as_deref()
            .map(|pattern| {
                // The regex crate matches in linear time; the size limit bounds its memory.
                regex::bytes::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| {
                    // The parser's message draws a caret on lines of its own; its last line says why.
                    let text = e.to_string();
                    let why = text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_owned();
                    self.error(raw, format!("`{pattern}` is not a regular expression: {why}"))
                })
            })
            .transpose()?;
        Ok(AnswerRule { status: rule.status.clone(), body })
    }

    /// `"SELECTOR"` or `{ from = "SELECTOR", regex = "…(…)…" }`.
    fn capture(&self, value: &Spanned<toml::Value>) -> Result<CaptureSpec> {
        let hint = "a capture is a selector (\"/id\", \"$.data[0].id\", \"header:location\", \"status\") \
                    or { from = \"header:location\", regex = \"/todos/(\\\\w+)\" }";
        let (from, regex) = match value.get_ref() {
            toml::Value::String(from) => (from.clone(), None),
            toml::Value::Table(table) => {
                if let Some(unknown) = table.keys().find(|k| *k != "from" && *k != "regex") {
                    return Err(self.error(value, format!("unknown capture key `{unknown}`: expected `from`, `regex`")));
                }
                let text = |k: &str| table.get(k).map(|v| v.as_str().map(str::to_owned).ok_or(()));
                match (text("from"), text("regex")) {
                    (Some(Ok(from)), None) => (from, None),
                    (Some(Ok(from)), Some(Ok(regex))) => (from, Some(regex)),
                    _ => {
                        return Err(self
                            .error(value, "`from` and `regex` are strings; `from` is required")
                            .with_hint(hint));
                    }
                }
            }
            _ => return Err(self.error(value, "expected a selector string or a table").with_hint(hint)),
        };
        let from = Selector::parse(&from, selector::Scope::Answer).map_err(|m| self.error(value, m).with_hint(hint))?;
        let regex = regex
            .map(|r| {
                regex::Regex::new(&r).map_err(|e| self.error(value, format!("`{r}` is not a regular expression: {e}")))
            })
            .transpose()?;
        Ok(CaptureSpec { from, regex })
    }

    fn selector(&self, value: &Spanned<String>, scope: selector::Scope) -> Result<Selector> {
        let text = value.get_ref().trim();
        if text.starts_with('/') {
            self.pointer(value, text)?;
        }
        Selector::parse(value.get_ref(), scope).map_err(|m| self.error(value, m))
    }

    fn setup(&self, raw: &RawSetup, keys: u64) -> Result<SetupSpec> {
        let request = self.request(
            &raw.method,
            http::Method::POST,
            &raw.path,
            &raw.body,
            &raw.headers,
            &raw.expect_status,
            &raw.reject_status,
            &raw.capture,
        )?;
        let rate = match &raw.rate {
            None => 1000.0,
            Some(r) => match limits::check_rate(*r.get_ref(), false) {
                Ok(()) => *r.get_ref(),
                Err(message) => {
                    return Err(self.error(r, format!("setup: {message}")).with_hint(format!(
                        "from {} to {:.0} setup requests/s",
                        limits::MIN_RATE,
                        limits::MAX_RATE
                    )));
                }
            },
        };
        // One request per key at `rate`: the setup must end within the duration bound.
        let span = keys as f64 / rate;
        if span > limits::MAX_DURATION.as_secs_f64() {
            let message = format!("{keys} keys at {rate} requests/s would take longer than 30 days");
            let error = match &raw.rate {
                Some(r) => self.error(r, message),
                None => self.error(&raw.path, message),
            };
            return Err(error.with_hint("raise the setup rate or lower [mix] keys.count"));
        }
        Ok(SetupSpec { request, rate })
    }

    fn operation(&self, raw: &RawOperation, kind: OpKind) -> Result<OperationSpec> {
        let default_method = if kind == OpKind::Command { http::Method::POST } else { http::Method::GET };
        let weight = raw.weight.as_ref().map_or(1, |w| *w.get_ref());
        let name = raw.name.get_ref().clone();
        if let Some(kafka) = &raw.kafka {
            if kind == OpKind::Query {
                return Err(self.error(kafka, "`kafka` sends a command; a [[query]] reads over HTTP"));
            }
            if let Some(path) = &raw.path {
                return Err(self.error(path, "a command sent over Kafka has no `path`"));
            }
            let k = kafka.get_ref();
            // The body is the record's value; statuses and captures apply to the broker's
            // acknowledgement (status 200, body {"partition": P, "offset": O}).
            let placeholder = Spanned::new(0..0, "/".to_owned());
            let mut request = self.request(
                &None,
                default_method,
                &placeholder,
                &raw.body,
                &raw.headers,
                &raw.expect_status,
                &raw.reject_status,
                &raw.capture,
            )?;
            request.kafka = Some(KafkaSend {
                topic: self.string(&k.topic)?,
                key: k
                    .key
                    .as_ref()
                    .map_or(Ok(Template::compile("{{key}}").expect("valid")), |key| self.template(key))?,
            });
            return self.keyed(
                raw,
                OperationSpec { name, kind, weight, request, keys: KeySource::Mix, creates_key: None, resolve: None },
            );
        }
        let path = raw.path.as_ref().ok_or_else(|| {
            self.error(
                &raw.name,
                format!("`{name}` needs a `path` (or `kafka = {{ topic = ... }}` for a command sent over Kafka)"),
            )
        })?;
        let request = self.request(
            &raw.method,
            default_method,
            path,
            &raw.body,
            &raw.headers,
            &raw.expect_status,
            &raw.reject_status,
            &raw.capture,
        )?;
        self.keyed(
            raw,
            OperationSpec { name, kind, weight, request, keys: KeySource::Mix, creates_key: None, resolve: None },
        )
    }

    /// Operations on created keys need a creator, and something else to run while none exists.
    fn created_keys(&self, raw: &RawScenario, operations: &[OperationSpec]) -> Result<()> {
        let Some(index) = operations.iter().position(|o| o.keys == KeySource::Created) else {
            return Ok(());
        };
        let raw_op = raw
            .command
            .iter()
            .chain(&raw.query)
            .find(|r| *r.name.get_ref() == operations[index].name)
            .expect("same operations");
        let at = raw_op.keys.as_ref().expect("set when Created");
        if !operations.iter().any(|o| o.creates_key.is_some() && o.weight > 0) {
            return Err(self
                .error(at, "no operation creates keys: give the create command `creates_key = \"NAME\"` (a capture)")
                .with_hint(
                    "capture = { id = { from = \"header:location\", regex = \"([^/]+)$\" } }, creates_key = \"id\"",
                ));
        }
        Ok(())
    }

    /// `keys = "created"` and `creates_key = "NAME"`.
    fn keyed(&self, raw: &RawOperation, mut op: OperationSpec) -> Result<OperationSpec> {
        if let (Some(rule), false) = (&raw.reject, raw.reject_status.is_empty()) {
            return Err(self
                .error(rule, "give either `reject_status` or `reject`, not both")
                .with_hint("reject = { status = [400], body = \"insufficient\" } (body optional)"));
        }
        op.request.reject = raw.reject.as_ref().map(|r| self.answer_rule(r)).transpose()?;
        op.request.conflict = raw.conflict.as_ref().map(|r| self.answer_rule(r)).transpose()?;
        if let Some(keys) = &raw.keys {
            op.keys = match keys.get_ref().as_str() {
                "created" => KeySource::Created,
                "mix" => KeySource::Mix,
                other => {
                    return Err(self.error(keys, format!("unknown key source `{other}`: expected `created` or `mix`")));
                }
            };
        }
        if let Some(name) = &raw.creates_key {
            // With `resolve`, the name is the resolved id's (`{{capture.NAME}}` on the new key).
            if raw.resolve.is_none() && !op.request.captures.iter().any(|(n, _)| n == name.get_ref()) {
                return Err(self
                    .error(name, format!("`{}` is not one of this operation's captures", name.get_ref()))
                    .with_hint(format!(
                        "add capture = {{ {} = \"header:location\" }} (or a body selector), or resolve = {{ query = \"...\", select = \"...\" }} to find it by reading",
                        name.get_ref()
                    )));
            }
            op.creates_key = Some(name.get_ref().clone());
        }
        Ok(op)
    }

    /// An operation named `name` of `kind`, as an index.
    /// Requests in flight × the largest request's fixed bytes (text and `{{bytes N}}`)
    /// within `limits::MAX_REQUEST_BYTES_IN_FLIGHT` (issue 32: each request in flight
    /// holds its rendering); the error points at that request's body (else its path).
    fn request_bytes_in_flight(&self, raw: &RawScenario, load: &LoadSpec, operations: &[OperationSpec]) -> Result<()> {
        let in_flight = match load.model {
            LoadModel::Open { max_in_flight, .. } => max_in_flight,
            LoadModel::Closed { .. } => max_users(&load.stages).max(1),
        };
        let size = |op: &OperationSpec| op.request.templates().map(Template::fixed_len).fold(0, usize::saturating_add);
        let Some((index, op)) = operations.iter().enumerate().max_by_key(|(_, op)| size(op)) else { return Ok(()) };
        let bytes = size(op);
        if in_flight.saturating_mul(bytes) <= limits::MAX_REQUEST_BYTES_IN_FLIGHT {
            return Ok(());
        }
        // Operations are the commands, then the queries, in file order.
        let raw_op = raw.command.iter().chain(&raw.query).nth(index).expect("one raw operation per operation");
        let span = match (&raw_op.body, &raw_op.path) {
            (Some(body), _) => body.span(),
            (None, Some(path)) => path.span(),
            (None, None) => raw_op.name.span(),
        };
        let fits = (limits::MAX_REQUEST_BYTES_IN_FLIGHT / bytes.max(1)).max(1);
        let message = format!(
            "`{}` renders {bytes} bytes a request, and {in_flight} requests may be in flight: over the {} the \
             harness holds for requests at once",
            op.name,
            limits::MAX_REQUEST_BYTES_IN_FLIGHT_TEXT
        );
        let hint = format!("lower [load] max_in_flight (or the users) to {fits}, or the request's size");
        Err(ScenarioError::at(self.path, self.text, span, message).with_hint(hint))
    }

    fn find(&self, name: &Spanned<String>, kind: OpKind, operations: &[OperationSpec]) -> Result<usize> {
        operations.iter().position(|o| o.name == *name.get_ref() && o.kind == kind).ok_or_else(|| {
            let known: Vec<&str> = operations.iter().filter(|o| o.kind == kind).map(|o| o.name.as_str()).collect();
            self.error(
                name,
                format!("no [[{}]] named `{}`: expected one of {}", kind.as_str(), name.get_ref(), quoted(&known)),
            )
        })
    }

    fn commands(&self, names: &Option<Vec<Spanned<String>>>, operations: &[OperationSpec]) -> Result<Vec<usize>> {
        match names {
            None => {
                Ok(operations.iter().enumerate().filter(|(_, o)| o.kind == OpKind::Command).map(|(i, _)| i).collect())
            }
            Some(names) => names.iter().map(|n| self.find(n, OpKind::Command, operations)).collect(),
        }
    }

    fn projection(&self, raw: &Spanned<RawProjection>, operations: &[OperationSpec]) -> Result<ProjectionSpec> {
        let p = raw.get_ref();
        let sample = p.sample.as_ref().map_or(Ok(0.05), |s| match *s.get_ref() {
            v if v > 0.0 && v <= 1.0 => Ok(v),
            _ => Err(self.error(s, "sample is a fraction in (0, 1]")),
        })?;
        let poll_interval = self.duration_or(&p.poll_interval, Duration::from_millis(5))?;
        if poll_interval.is_zero() {
            return Err(self.error(p.poll_interval.as_ref().expect("set"), "poll_interval must be more than zero"));
        }
        let commands = self.commands(&p.commands, operations)?;
        let query = self.find(&p.query, OpKind::Query, operations)?;
        self.check_probe_query(&p.query, query, &commands, operations)?;
        Ok(ProjectionSpec {
            commands,
            sample,
            query,
            until: Predicate::parse_probe(p.until.get_ref())
                .map_err(|m| self.error(&p.until, m).with_hint(selector::PREDICATE_HINT))?,
            poll_interval,
            timeout: self.duration_or(&p.timeout, Duration::from_secs(10))?,
            stages: match &p.stages {
                None => StageTimesSpec::default(),
                Some(raw) => {
                    let s = raw.get_ref();
                    let selector = |v: &Option<Spanned<String>>| {
                        v.as_ref().map(|v| self.selector(v, selector::Scope::Body)).transpose()
                    };
                    StageTimesSpec {
                        received_at: selector(&s.received_at)?,
                        applied_at: selector(&s.applied_at)?,
                        event_ref: selector(&s.event_ref)?,
                        group: s.group.as_ref().map(|g| g.get_ref().clone()),
                    }
                }
            },
        })
    }

    /// A probe reading one key (`{{key}}` in its query) needs every probed command to
    /// have a key: its own, or the one it creates (`creates_key`).
    fn check_probe_query(
        &self,
        at: &Spanned<String>,
        query: usize,
        commands: &[usize],
        operations: &[OperationSpec],
    ) -> Result<()> {
        if !operations[query].is_keyless()
            && let Some(op) =
                commands.iter().map(|&i| &operations[i]).find(|o| o.is_keyless() && o.creates_key.is_none())
        {
            return Err(self
                .error(
                    at,
                    format!("`{}` reads one key, but command `{}` has no key to read it with", at.get_ref(), op.name),
                )
                .with_hint(
                    "probe with a query that lists everything (no {{key}}), or give the command `creates_key`",
                ));
        }
        Ok(())
    }

    fn predicate(&self, raw: &Spanned<String>) -> Result<Predicate> {
        Predicate::parse(raw.get_ref()).map_err(|m| self.error(raw, m).with_hint(selector::PREDICATE_HINT))
    }

    fn verify(&self, raw: &Spanned<RawVerify>, operations: &[OperationSpec]) -> Result<VerifySpec> {
        let v = raw.get_ref();
        let query = self.find(&v.query, OpKind::Query, operations)?;
        let applied_refs = v.applied_refs.as_ref().map(|a| self.selector(a, selector::Scope::Body)).transpose()?;
        let values = self.values(v, operations)?;
        let count = v.count.as_ref().map(|c| self.count(c, operations)).transpose()?;
        if applied_refs.is_none() && values.is_empty() && count.is_none() {
            return Err(self
                .error(raw, "[verify] checks nothing: give `applied_refs` (refs in the read model), `value` (a number per key) or `count` (rows per command)")
                .with_hint("applied_refs = \"/refs\" or \"$.data[*].describe\"; value = \"/quantity\" with deltas = { restock = \"/amount\" }"));
        }
        let keyless = operations[query].is_keyless();
        if keyless && let Some(value) = &v.value {
            return Err(self
                .error(
                    value,
                    format!("value accounting reads one key at a time, but `{}` has no {{{{key}}}}", v.query.get_ref()),
                )
                .with_hint("verify values with a query such as GET /items/{{key}}"));
        }
        // Paging: a global list page by page, or one key's refs page by page (issue 18: the
        // reference bank's `/accounts/{id}/refs?page=N`).
        let page = match &v.page {
            Some(page) => {
                let p = page.get_ref();
                let param = p.param.get_ref().trim().to_owned();
                if param.is_empty() || param.contains(['&', '=', '?', ' ']) {
                    return Err(self.error(&p.param, "a query parameter name such as \"page\""));
                }
                Some(PageSpec { param, start: p.start.unwrap_or(1) })
            }
            None => None,
        };
        let commands = self.commands(&v.commands, operations)?;
        if !keyless
            && let Some(op) =
                commands.iter().map(|&i| &operations[i]).find(|o| o.is_keyless() && o.creates_key.is_none())
        {
            return Err(self
                .error(
                    &v.query,
                    format!(
                        "`{}` reads one key, but command `{}` has no key: its refs could not be found",
                        v.query.get_ref(),
                        op.name
                    ),
                )
                .with_hint(
                    "verify with a query that lists everything (no {{key}}), or give the command `creates_key`",
                ));
        }
        Ok(VerifySpec {
            commands,
            settle: self.duration_or(&v.settle, Duration::from_secs(30))?,
            query,
            applied_refs,
            values,
            page,
            count,
        })
    }

    /// `[verify] count`: a query that reads `{{key}}`, and rows of `[[command]]`s.
    fn count(&self, raw: &Spanned<RawCount>, operations: &[OperationSpec]) -> Result<CountSpec> {
        let c = raw.get_ref();
        let query = self.find(&c.query, OpKind::Query, operations)?;
        if operations[query].is_keyless() {
            return Err(self
                .error(
                    &c.query,
                    format!("`count` reads one key's rows, but `{}` has no {{{{key}}}}", c.query.get_ref()),
                )
                .with_hint("count with a query such as GET /wallets/{{key}}/history"));
        }
        if c.rows.is_empty() {
            return Err(self
                .error(raw, "`count` has no `rows`: per command, the selector of its rows")
                .with_hint("rows = { deposit = \"$[?@.operation=='CREDIT']\" }"));
        }
        let (mut rows, mut without_rows) = (Vec::new(), Vec::new());
        for (name, selector) in &c.rows {
            let op = operations
                .iter()
                .position(|o| o.name == *name && o.kind == OpKind::Command)
                .ok_or_else(|| self.error(selector, format!("no [[command]] named `{name}`")))?;
            // `"none"`: the command writes no row (said, so `validate` does not warn).
            if selector.get_ref() == "none" {
                without_rows.push(op);
                continue;
            }
            rows.push((op, self.selector(selector, selector::Scope::Body)?));
        }
        if rows.is_empty() {
            return Err(self
                .error(raw, "`count` counts no rows: every command in `rows` is \"none\"")
                .with_hint("rows = { deposit = \"$[?@.operation=='CREDIT']\" }"));
        }
        Ok(CountSpec { query, rows, without_rows })
    }

    /// `[verify] value`: one number (`value = "/quantity"` with `deltas`, `initial`,
    /// `write_value` beside it) or several (`value = [{ name, select, deltas }, …]`, each
    /// with its own; `write_query` and `absent` apply to all).
    fn values(&self, v: &RawVerify, operations: &[OperationSpec]) -> Result<Vec<ValueSpec>> {
        let absent = match v.absent.as_ref().map(|a| (a, a.get_ref().as_str())) {
            None | Some((_, "absent")) => AbsentRows::Absent,
            Some((_, "zero")) => AbsentRows::Zero,
            Some((a, _)) => {
                return Err(
                    self.error(a, "`absent` is \"absent\" (a key without a row is wrong) or \"zero\" (no row means 0)")
                );
            }
        };
        let Some(value) = &v.value else {
            if let Some(extra) = v.deltas.values().next().or(v.write_query.as_ref()).or(v.write_value.as_ref()) {
                return Err(self.error(extra, "`deltas` and `write_query` need `value`: the read model's number"));
            }
            return Ok(Vec::new());
        };
        let items = match value.get_ref() {
            RawValues::One(text) => {
                let read = Spanned::new(value.span(), text.clone());
                let expected =
                    self.expected(&read, &v.write_query, &v.write_value, &v.deltas, &v.initial, operations)?;
                return Ok(vec![ValueSpec {
                    name: "value".to_owned(),
                    read: self.selector(&read, selector::Scope::Body)?,
                    expected,
                    absent,
                }]);
            }
            RawValues::Many(items) => items,
        };
        // Beside an array, these would be ambiguous: which value do they belong to?
        if let Some(extra) = v.deltas.values().next().or(v.write_value.as_ref()) {
            return Err(self
                .error(extra, "with several values, each gives its own `deltas` (or `write_value`)")
                .with_hint(
                    "value = [{ name = \"on_hand\", select = \"/qty_on_hand\", deltas = { restock = \"/qty\" } }, …]",
                ));
        }
        if let Some(initial) = &v.initial {
            return Err(self.error(initial, "with several values, each gives its own `initial`").with_hint(
                "value = [{ name = \"on_hand\", select = \"/qty_on_hand\", initial = 100, deltas = {…} }, …]",
            ));
        }
        if items.is_empty() {
            return Err(self
                .error(value, "`value` is an empty array: give at least one { name, select, deltas }")
                .with_hint("or one number: value = \"/quantity\" with deltas beside it"));
        }
        if items.len() > MAX_VALUES {
            return Err(self.error(value, format!("at most {MAX_VALUES} values per key, here {}", items.len())));
        }
        let mut values: Vec<ValueSpec> = Vec::new();
        for item in items {
            let name = match &item.name {
                Some(name) => {
                    let text = name.get_ref().trim();
                    if text.is_empty() || !text.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                        return Err(self
                            .error(name, "a value's name is letters, digits, `_` or `-`")
                            .with_hint("it is read as {{key.expected.NAME}} in [projection] until"));
                    }
                    text.to_owned()
                }
                None => item.select.get_ref().trim().to_owned(),
            };
            if values.iter().any(|other| other.name == name) {
                let at = item.name.as_ref().unwrap_or(&item.select);
                return Err(self
                    .error(at, format!("two values are named `{name}`"))
                    .with_hint("give each value its own `name`"));
            }
            let expected = self.expected(
                &item.select,
                &v.write_query,
                &item.write_value,
                &item.deltas,
                &item.initial,
                operations,
            )?;
            values.push(ValueSpec {
                name,
                read: self.selector(&item.select, selector::Scope::Body)?,
                expected,
                absent,
            });
        }
        Ok(values)
    }

    /// `deltas` (+ `initial`) or `write_query` + `write_value`.
    fn expected(
        &self,
        value: &Spanned<String>,
        write_query: &Option<Spanned<String>>,
        write_value: &Option<Spanned<String>>,
        deltas: &std::collections::BTreeMap<String, Spanned<String>>,
        initial: &Option<Spanned<f64>>,
        operations: &[OperationSpec],
    ) -> Result<ExpectedValue> {
        match (write_query, write_value, deltas.is_empty()) {
            (Some(query), Some(read), true) => Ok(ExpectedValue::WriteSide {
                query: self.find(query, OpKind::Query, operations)?,
                read: self.selector(read, selector::Scope::Body)?,
            }),
            (None, None, false) => {
                let mut changes = Vec::new();
                for (name, pointer) in deltas {
                    let op = operations.iter().position(|o| o.name == *name && o.kind == OpKind::Command).ok_or_else(|| {
                        self.error(pointer, format!("no [[command]] named `{name}`"))
                    })?;
                    let text = pointer.get_ref().trim();
                    if text == "none" {
                        changes.push((op, Delta { pointer: String::new(), mode: DeltaMode::Unchanged }));
                        continue;
                    }
                    let (mode, text) = match (text.strip_prefix('-'), text.strip_prefix('=')) {
                        (Some(rest), _) => (DeltaMode::Subtract, rest),
                        (_, Some(rest)) => (DeltaMode::Set, rest),
                        _ => (DeltaMode::Add, text),
                    };
                    self.pointer(pointer, text)?;
                    if !text.starts_with('/') {
                        return Err(self
                            .error(pointer, "a delta is a JSON pointer into the command's request body, e.g. \"/amount\" or \"-/amount\"")
                            .with_hint("\"-\" in front subtracts the amount, \"=\" sets the number to it; \"none\": no change"));
                    }
                    changes.push((op, Delta { pointer: text.to_owned(), mode }));
                }
                let initial = match initial {
                    Some(i) if !i.get_ref().is_finite() => return Err(self.error(i, "initial is a finite number")),
                    Some(i) => *i.get_ref(),
                    None => 0.0,
                };
                Ok(ExpectedValue::Deltas { initial, deltas: changes })
            }
            _ => Err(self.error(value, "value accounting needs either `deltas` (per command, what it adds) or both `write_query` and `write_value`")),
        }
    }

    fn bus(&self, raw: &RawBus, timeout: Duration) -> Result<crate::scenario::BusSpec> {
        if raw.kind.get_ref() != "kafka" {
            return Err(self.error(&raw.kind, format!("unknown bus kind `{}`: expected `kafka`", raw.kind.get_ref())));
        }
        let ref_pointer = raw.ref_pointer.as_ref().map_or_else(|| "/ref".to_owned(), |p| p.get_ref().clone());
        if let Some(p) = raw.ref_pointer.as_ref() {
            if !p.get_ref().starts_with('/') {
                return Err(self.error(p, "`ref` is a JSON pointer such as \"/ref\""));
            }
            self.pointer(p, p.get_ref())?;
        }
        Ok(crate::scenario::BusSpec {
            // CQRS_BENCH_KAFKA_BROKERS points every scenario at another cluster.
            brokers: match std::env::var("CQRS_BENCH_KAFKA_BROKERS") {
                Ok(brokers) if !brokers.trim().is_empty() => brokers,
                _ => self.string(&raw.brokers)?,
            },
            topic: self.string(&raw.topic)?,
            ref_pointer,
            consumer_groups: raw.consumer_groups.clone(),
            client: raw
                .client
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.kafka_option(k, v)?)))
                .collect::<Result<Vec<_>>>()?,
            timeout,
        })
    }

    /// A `[bus] client` option librdkafka knows, with a value it accepts (issue 18: an
    /// unknown key passed `validate` and failed the run). Checked by setting it on a
    /// native configuration: nothing connects. The value is never quoted (it may be a secret).
    fn kafka_option(&self, key: &str, value: &Spanned<String>) -> Result<String> {
        let text = self.string(value)?;
        if let Err(e) = rdkafka::ClientConfig::new().set(key, &text).create_native_config() {
            let why = match &e {
                rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc.clone(),
                other => other.to_string(),
            };
            let why = if text.len() >= 3 { why.replace(&text, super::redact::MASK) } else { why };
            return Err(self
                .error(value, format!("Kafka client option `{key}`: {why}"))
                .with_hint("see librdkafka's CONFIGURATION.md for the option names"));
        }
        Ok(text)
    }

    fn action(&self, raw: &RawAction) -> Result<ActionSpec> {
        let at = self.duration(&raw.at)?;
        let what = match (&raw.exec, &raw.http) {
            (Some(exec), None) => ActionKind::Exec(self.shell_command(exec)?),
            (None, Some(http)) => {
                let text = self.string(http)?;
                let (method, path) = text
                    .trim()
                    .split_once(' ')
                    .ok_or_else(|| self.error(http, "expected \"METHOD /path\", e.g. \"POST /admin/pause\""))?;
                let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| self.error(http, format!("`{method}` is not an HTTP method")))?;
                let path = path.trim();
                if !path.starts_with('/') {
                    return Err(self.error(http, "the path starts with `/`"));
                }
                ActionKind::Http { method, path: path.to_owned() }
            }
            _ => return Err(self.error(&raw.at, "an action has exactly one of `exec` or `http`")),
        };
        // Named by what the user wrote, `${ENV}` unresolved (issue 32: a resolved token
        // was the name in result.json, report.html, the plots and the terminal).
        let name = raw.name.clone().unwrap_or_else(|| match (&what, &raw.http) {
            (ActionKind::Exec(command), _) => command.text.clone(),
            (ActionKind::Http { method, .. }, Some(http)) => {
                let written = http.get_ref().trim();
                format!("{method} {}", written.split_once(' ').map_or(written, |(_, path)| path.trim()))
            }
            (ActionKind::Http { method, path }, None) => format!("{method} {path}"),
        });
        Ok(ActionSpec { name, at, what })
    }

    fn slo(
        &self,
        key: &Spanned<String>,
        value: &Spanned<toml::Value>,
        operations: &[OperationSpec],
    ) -> Result<SloRule> {
        let name = key.get_ref().as_str();
        let metric = parse_slo_name(name, operations).ok_or_else(|| {
            self.error(key, format!("unknown SLO `{name}`")).with_hint(
                "expected command_latency_pNN, query_latency_pNN, <operation>_latency_pNN, projection_lag_pNN (pNN: p50, p95, p99, p999, p99.9), \
                 late_ratio, duplicates, missed, unexpected, value_mismatches, count_mismatches, command_error_rate, query_error_rate, conflict_rate, min_throughput, max_dropped, consumer_lag_max, bus_e2e_pNN, backlog_max, backlog_drain, stale_read_p_at_DELAY (e.g. stale_read_p_at_100ms), stale_read_rate",
            )
        })?;
        let is_time = matches!(
            metric,
            SloMetric::CommandLatency(_)
                | SloMetric::QueryLatency(_)
                | SloMetric::OperationLatency { .. }
                | SloMetric::ProjectionLag(_)
                | SloMetric::BusEndToEnd(_)
                | SloMetric::BacklogDrain
        );
        let threshold = match (is_time, value.get_ref()) {
            (true, toml::Value::String(text)) => {
                let d = humantime::parse_duration(text.trim())
                    .map_err(|e| self.error(value, format!("`{text}` is not a duration ({e})")))?;
                // Bounded: the threshold goes back into a `Duration` (recovery) and onto plots.
                self.bounded_duration(value, text, d)?.as_secs_f64() * 1000.0
            }
            (true, _) => {
                return Err(self.error(value, "a latency threshold is a duration string, e.g. \"200ms\""));
            }
            (false, toml::Value::Integer(n)) if *n >= 0 => *n as f64,
            (false, toml::Value::Float(f)) if f.is_finite() && *f >= 0.0 => *f,
            (false, _) => return Err(self.error(value, "expected a number of zero or more")),
        };
        if matches!(
            metric,
            SloMetric::CommandErrorRate
                | SloMetric::QueryErrorRate
                | SloMetric::ConflictRate
                | SloMetric::LateRatio
                | SloMetric::StaleReadAt(_)
                | SloMetric::StaleReadRate
        ) && threshold > 1.0
        {
            return Err(self.error(value, "a rate or ratio is a fraction: 0.001 means 0.1 %"));
        }
        // Thresholds reach plot axes and comparisons: keep them to what a run can observe.
        if metric == SloMetric::MinThroughput && threshold > limits::MAX_RATE {
            return Err(self
                .error(value, "min_throughput is out of range")
                .with_hint(format!("from 0 to {:.0} operations/s", limits::MAX_RATE)));
        }
        if !is_time && threshold > limits::MAX_COUNT {
            return Err(self.error(value, "the threshold is out of range").with_hint("from 0 to 1e15"));
        }
        Ok(SloRule { name: name.to_owned(), metric, threshold })
    }
}

/// `p95` → 95.0, `p999` → 99.9, `p99.9` → 99.9, `p50` → 50.0.
fn parse_percentile(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('p')?;
    // ASCII digits only (issue 32: `p９９`, full-width digits, were cut inside a character).
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value = if digits.contains('.') {
        digits.parse::<f64>().ok()?
    } else if digits.len() > 2 {
        // p999 = 99.9, p9999 = 99.99
        format!("{}.{}", &digits[..2], &digits[2..]).parse::<f64>().ok()?
    } else {
        digits.parse::<f64>().ok()?
    };
    (value > 0.0 && value <= 100.0).then_some(value)
}

fn parse_slo_name(name: &str, operations: &[OperationSpec]) -> Option<SloMetric> {
    slo_metric(name, &|operation| operations.iter().any(|o| o.name == operation))
}

/// What an SLO name judges (`command_latency_p99`, `missed`, `<operation>_latency_p95`, …);
/// `is_operation` tells the scenario's operation names. `merge` re-reads the rules of a
/// result this way.
pub fn slo_metric(name: &str, is_operation: &dyn Fn(&str) -> bool) -> Option<SloMetric> {
    let simple = match name {
        "duplicates" => Some(SloMetric::Duplicates),
        "missed" => Some(SloMetric::Missed),
        "unexpected" => Some(SloMetric::Unexpected),
        "command_error_rate" => Some(SloMetric::CommandErrorRate),
        "query_error_rate" => Some(SloMetric::QueryErrorRate),
        "conflict_rate" => Some(SloMetric::ConflictRate),
        "late_ratio" => Some(SloMetric::LateRatio),
        "value_mismatches" => Some(SloMetric::ValueMismatches),
        "count_mismatches" => Some(SloMetric::CountMismatches),
        "min_throughput" => Some(SloMetric::MinThroughput),
        "max_dropped" => Some(SloMetric::Dropped),
        "consumer_lag_max" => Some(SloMetric::ConsumerLagMax),
        "backlog_max" => Some(SloMetric::BacklogMax),
        "backlog_drain" => Some(SloMetric::BacklogDrain),
        _ => staleness::stale_read_slo(name),
    };
    if simple.is_some() {
        return simple;
    }
    let (subject, percentile) = name.rsplit_once('_')?;
    let percentile = parse_percentile(percentile)?;
    match subject {
        "command_latency" => Some(SloMetric::CommandLatency(percentile)),
        "query_latency" => Some(SloMetric::QueryLatency(percentile)),
        "projection_lag" => Some(SloMetric::ProjectionLag(percentile)),
        "bus_e2e" => Some(SloMetric::BusEndToEnd(percentile)),
        other => {
            let operation = other.strip_suffix("_latency")?;
            is_operation(operation).then(|| SloMetric::OperationLatency { operation: operation.to_owned(), percentile })
        }
    }
}

fn quoted(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none defined)".into();
    }
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Resolves `${NAME}`, adding each value to `values`; `Err(NAME)` when a variable is not
/// set. `$$` stays `$$`.
fn interpolate(text: &str, values: &mut Vec<String>) -> std::result::Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| name.to_owned())?;
        out.push_str(&value);
        if !values.contains(&value) {
            values.push(value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where byte `offset` of `interpolate(text)` was written in `text`: a byte of a
/// `${NAME}`'s value maps to its `$` (the same walk as [`interpolate`]).
fn before_interpolation(text: &str, offset: usize) -> usize {
    let (mut rest, mut written, mut resolved) = (text, 0, 0);
    while let Some(start) = rest.find("${") {
        if offset < resolved + start {
            break;
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let value = std::env::var(&after[..end]).map_or(0, |v| v.len());
        if offset < resolved + start + value {
            return written + start;
        }
        (written, resolved) = (written + start + end + 3, resolved + start + value);
        rest = &after[end + 1..];
    }
    (written + offset.saturating_sub(resolved)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_before_interpolation() {
        let home = std::env::var("HOME").expect("HOME is set");
        let text = "a${HOME}b${CQRS_BENCH_NOPE_NOPE";
        let resolved = format!("a{home}b${{CQRS_BENCH_NOPE_NOPE");
        assert_eq!(interpolate(text, &mut Vec::new()).unwrap(), resolved);
        assert_eq!(before_interpolation(text, 0), 0);
        assert_eq!(before_interpolation(text, 1), 1, "inside the value: its `$`");
        assert_eq!(before_interpolation(text, 1 + home.len()), 8, "`b`");
        assert_eq!(before_interpolation(text, resolved.len()), text.len());
        assert_eq!(before_interpolation("no vars", 3), 3);
    }

    #[test]
    fn full_width_percentiles_are_not_percentiles() {
        for bad in ["p９９", "p9９", "p", "p.", "p+5", "p1e1", "pinf", "p99.9.9"] {
            assert_eq!(parse_percentile(bad), None, "{bad}");
        }
    }

    #[test]
    fn percentiles() {
        assert_eq!(parse_percentile("p95"), Some(95.0));
        assert_eq!(parse_percentile("p999"), Some(99.9));
        assert_eq!(parse_percentile("p99.9"), Some(99.9));
        assert_eq!(parse_percentile("p0"), None);
        assert_eq!(parse_percentile("95"), None);
    }

    #[test]
    fn interpolation() {
        let path = std::env::var("PATH").expect("PATH is set");
        let mut values = Vec::new();
        assert_eq!(interpolate("x ${PATH}!", &mut values), Ok(format!("x {path}!")));
        assert_eq!(values, std::slice::from_ref(&path));
        assert_eq!(interpolate("${CQRS_BENCH_NOPE_NOPE}", &mut values), Err("CQRS_BENCH_NOPE_NOPE".into()));
        assert_eq!(interpolate("no vars", &mut values), Ok("no vars".into()));
    }
}
