//! `[[backlog]]` (issue 33): event backlog sources, one table each. The keys a kind needs
//! are checked against its kind here; whether the source answers is checked when the run
//! starts (the harness connects then, as it does for a Kafka topic).

use std::time::Duration;

use toml::Spanned;

use super::{Checker, Result};
use crate::scenario::model::{BacklogSource, BacklogSpec};
use crate::scenario::raw::RawBacklog;

/// The kinds `[[backlog]] kind` accepts.
pub const BACKLOG_KINDS: &str = "`redis-streams`, `sql` or `nats`";
/// Sampling faster than this loads the source for little (one read per source per sample).
const MIN_EVERY: Duration = Duration::from_millis(100);
/// Sampling goes on this long after the load, waiting for the backlog to drain, unless
/// `settle` says otherwise.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);

impl Checker<'_> {
    pub(super) fn backlogs(&self, raw: &[Spanned<RawBacklog>]) -> Result<Vec<BacklogSpec>> {
        let mut specs: Vec<BacklogSpec> = Vec::new();
        for table in raw {
            let spec = self.backlog(table)?;
            if specs.iter().any(|s| s.name == spec.name) {
                let at = table.get_ref().name.as_ref().map_or(table.span(), |n| n.span());
                return Err(super::ScenarioError::at(
                    self.path,
                    self.text,
                    at,
                    format!("a second [[backlog]] named `{}`", spec.name),
                )
                .with_hint("give each source its own `name`"));
            }
            specs.push(spec);
        }
        Ok(specs)
    }

    fn backlog(&self, table: &Spanned<RawBacklog>) -> Result<BacklogSpec> {
        let raw = table.get_ref();
        let needed = |value: &Option<Spanned<String>>, key: &str, example: &str| -> Result<String> {
            match value {
                Some(v) if !v.get_ref().trim().is_empty() => self.string(v),
                Some(v) => Err(self.error(v, format!("`{key}` is empty"))),
                None => Err(self
                    .error(table, format!("a `{}` backlog needs `{key}`", raw.kind.get_ref()))
                    .with_hint(format!("{key} = {example}"))),
            }
        };
        let not_for = |value: &Option<Spanned<String>>, key: &str| -> Result<()> {
            match value {
                Some(v) => Err(self.error(v, format!("`{key}` is not a key of a `{}` backlog", raw.kind.get_ref()))),
                None => Ok(()),
            }
        };
        let (source, default_name) = match raw.kind.get_ref().as_str() {
            "redis-streams" => {
                not_for(&raw.head, "head")?;
                not_for(&raw.checkpoint, "checkpoint")?;
                not_for(&raw.consumer, "consumer")?;
                not_for(&raw.checkpoints, "checkpoints")?;
                not_for(&raw.oldest_unapplied, "oldest_unapplied")?;
                let stream = needed(&raw.stream, "stream", "\"inventory-events\"")?;
                let group = needed(&raw.group, "group", "\"search-projector\"")?;
                let name = format!("{stream}/{group}");
                (BacklogSource::RedisStreams { stream, group }, name)
            }
            "sql" => {
                not_for(&raw.stream, "stream")?;
                not_for(&raw.group, "group")?;
                not_for(&raw.consumer, "consumer")?;
                let head = needed(&raw.head, "head", "\"select max(id) from events\"")?;
                let (checkpoint, per_projection) = self.sql_checkpoint(table)?;
                let oldest_unapplied = match &raw.oldest_unapplied {
                    None => None,
                    Some(at) => {
                        let query = needed(&raw.oldest_unapplied, "oldest_unapplied", "")?;
                        // Several projections: the query must say which, by its checkpoint.
                        if per_projection && !query.contains("$1") {
                            return Err(self
                                .error(at, "with `checkpoints`, `oldest_unapplied` must take each projection's checkpoint as `$1`")
                                .with_hint("oldest_unapplied = \"select min(created_at) from events where id > $1\""));
                        }
                        Some(query)
                    }
                };
                (BacklogSource::Sql { head, checkpoint, per_projection, oldest_unapplied }, "sql".to_owned())
            }
            "nats" => {
                not_for(&raw.group, "group")?;
                not_for(&raw.head, "head")?;
                not_for(&raw.checkpoint, "checkpoint")?;
                not_for(&raw.checkpoints, "checkpoints")?;
                not_for(&raw.oldest_unapplied, "oldest_unapplied")?;
                let stream = needed(&raw.stream, "stream", "\"ORDERS\"")?;
                let consumer = needed(&raw.consumer, "consumer", "\"order-view\"")?;
                self.jetstream_name(&raw.stream, &stream, "stream")?;
                self.jetstream_name(&raw.consumer, &consumer, "consumer")?;
                let name = format!("{stream}/{consumer}");
                (BacklogSource::Nats { stream, consumer }, name)
            }
            other => {
                return Err(self
                    .error(&raw.kind, format!("unknown backlog kind `{other}`"))
                    .with_hint(format!("expected {BACKLOG_KINDS}")));
            }
        };
        let url = needed(&raw.url, "url", self.url_example(&source))?;
        self.backlog_url(raw, &source, &url)?;
        let every = self.duration_or(&raw.every, Duration::from_secs(1))?;
        if every < MIN_EVERY {
            let at = raw.every.as_ref().expect("below the minimum, so given");
            return Err(self
                .error(at, "sampling more often than every 100ms is not supported")
                .with_hint("every = \"1s\""));
        }
        let settle = self.duration_or(&raw.settle, DEFAULT_SETTLE)?;
        let name = match &raw.name {
            Some(n) if n.get_ref().trim().is_empty() => return Err(self.error(n, "`name` is empty")),
            Some(n) => n.get_ref().trim().to_owned(),
            None => default_name,
        };
        Ok(BacklogSpec { name, url, every, settle, source })
    }

    /// A JetStream stream or consumer name goes into API subjects
    /// (`$JS.API.CONSUMER.INFO.<stream>.<consumer>`): no `.`, wildcard or space.
    fn jetstream_name(&self, at: &Option<Spanned<String>>, name: &str, key: &str) -> Result<()> {
        match name.chars().find(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control()) {
            None => Ok(()),
            Some(c) => Err(self
                .error(at.as_ref().expect("read by `needed`"), format!("a JetStream {key} name cannot hold {c:?}"))
                .with_hint(match key {
                    "stream" => "a stream's name, not a subject: as `nats stream ls` lists it",
                    _ => "a durable consumer's name: as `nats consumer ls <stream>` lists it",
                })),
        }
    }

    /// `checkpoint` (one number) or `checkpoints` ((projection, checkpoint) rows): exactly
    /// one of them. Returns the query and whether it answers rows.
    fn sql_checkpoint(&self, table: &Spanned<RawBacklog>) -> Result<(String, bool)> {
        let raw = table.get_ref();
        match (&raw.checkpoint, &raw.checkpoints) {
            (Some(_), Some(both)) => Err(self
                .error(both, "`checkpoint` and `checkpoints` both given")
                .with_hint("`checkpoint` answers one projection's position, `checkpoints` (name, position) rows: keep one")),
            (Some(one), None) if one.get_ref().trim().is_empty() => Err(self.error(one, "`checkpoint` is empty")),
            (Some(one), None) => Ok((self.string(one)?, false)),
            (None, Some(rows)) if rows.get_ref().trim().is_empty() => Err(self.error(rows, "`checkpoints` is empty")),
            (None, Some(rows)) => Ok((self.string(rows)?, true)),
            (None, None) => Err(self
                .error(table, "a `sql` backlog needs `checkpoint` (or `checkpoints`)")
                .with_hint("checkpoint = \"select position from checkpoints where name = 'view'\", or checkpoints = \"select name, position from checkpoints\"")),
        }
    }

    fn url_example(&self, source: &BacklogSource) -> &'static str {
        match source {
            BacklogSource::RedisStreams { .. } => "\"redis://127.0.0.1:6379\"",
            BacklogSource::Sql { .. } => "\"postgres://user@127.0.0.1:5432/db\"",
            BacklogSource::Nats { .. } => "\"nats://127.0.0.1:4222\"",
        }
    }

    /// The URL's scheme fits the kind (a mysql:// URL is told it is not supported yet).
    fn backlog_url(&self, raw: &RawBacklog, source: &BacklogSource, url: &str) -> Result<()> {
        let at = raw.url.as_ref().expect("read by `needed`");
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        let fits = match source {
            BacklogSource::RedisStreams { .. } => matches!(scheme, "redis" | "rediss"),
            BacklogSource::Sql { .. } => matches!(scheme, "postgres" | "postgresql"),
            BacklogSource::Nats { .. } => scheme == "nats",
        };
        if fits {
            return Ok(());
        }
        let message = match (source, scheme) {
            (BacklogSource::Sql { .. }, "mysql" | "mariadb") => {
                "MySQL/MariaDB backlogs are not supported yet".to_owned()
            }
            _ => format!(
                "`{}` is not a URL a `{}` backlog reads",
                super::super::redact::redact_urls(url),
                raw.kind.get_ref()
            ),
        };
        Err(self.error(at, message).with_hint(format!("url = {}", self.url_example(source))))
    }
}
