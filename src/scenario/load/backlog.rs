//! `[[backlog]]` (issue 33): event backlog sources, one table each. The keys a kind needs
//! are checked against its kind here; whether the source answers is checked when the run
//! starts (the harness connects then, as it does for a Kafka topic).

use std::time::Duration;

use toml::Spanned;

use super::{Checker, Result};
use crate::scenario::model::{BacklogSource, BacklogSpec};
use crate::scenario::raw::RawBacklog;

/// The kinds `[[backlog]] kind` accepts.
pub const BACKLOG_KINDS: &str = "`redis-streams`, `sql`, `nats` or `rabbitmq`";
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
        let (source, default_name) = match raw.kind.get_ref().as_str() {
            "redis-streams" => {
                self.only_keys_of(raw, &["stream", "group"])?;
                let stream = needed(&raw.stream, "stream", "\"inventory-events\"")?;
                let group = needed(&raw.group, "group", "\"search-projector\"")?;
                let name = format!("{stream}/{group}");
                (BacklogSource::RedisStreams { stream, group }, name)
            }
            "sql" => {
                self.only_keys_of(raw, &["head", "checkpoint", "checkpoints", "oldest_unapplied"])?;
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
                self.only_keys_of(raw, &["stream", "consumer"])?;
                let stream = needed(&raw.stream, "stream", "\"ORDERS\"")?;
                let consumer = needed(&raw.consumer, "consumer", "\"order-view\"")?;
                self.jetstream_name(&raw.stream, &stream, "stream")?;
                self.jetstream_name(&raw.consumer, &consumer, "consumer")?;
                let name = format!("{stream}/{consumer}");
                (BacklogSource::Nats { stream, consumer }, name)
            }
            "rabbitmq" => {
                self.only_keys_of(raw, &["queue", "management_url"])?;
                self.rabbitmq(raw, table)?
            }
            other => {
                return Err(self
                    .error(&raw.kind, format!("unknown backlog kind `{other}`"))
                    .with_hint(format!("expected {BACKLOG_KINDS}")));
            }
        };
        let url = needed(&raw.url, "url", self.url_example(&source))?;
        self.backlog_url(raw, &source, &url)?;
        self.mysql_sql(raw, &url)?;
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
            BacklogSource::RabbitMq { .. } => "\"amqp://guest:guest@127.0.0.1:5672/%2f\"",
        }
    }

    /// The URL's scheme fits the kind.
    fn backlog_url(&self, raw: &RawBacklog, source: &BacklogSource, url: &str) -> Result<()> {
        let at = raw.url.as_ref().expect("read by `needed`");
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        let fits = match source {
            BacklogSource::RedisStreams { .. } => matches!(scheme, "redis" | "rediss"),
            BacklogSource::Sql { .. } => matches!(scheme, "postgres" | "postgresql" | "mysql" | "mariadb"),
            BacklogSource::Nats { .. } => scheme == "nats",
            BacklogSource::RabbitMq { .. } => scheme == "amqp",
        };
        if fits {
            return Ok(());
        }
        let message = match (source, scheme) {
            // The AMQP client is built without TLS (it would add rustls to every build).
            (BacklogSource::RabbitMq { .. }, "amqps") => "amqps:// (TLS) is not supported".to_owned(),
            _ => format!(
                "`{}` is not a URL a `{}` backlog reads",
                super::super::redact::redact_urls(url),
                raw.kind.get_ref()
            ),
        };
        Err(self.error(at, message).with_hint(format!("url = {}", self.url_example(source))))
    }
}

/// `kind = "rabbitmq"`'s keys (kept apart from the shared dispatch above).
impl Checker<'_> {
    fn rabbitmq(&self, raw: &RawBacklog, table: &Spanned<RawBacklog>) -> Result<(BacklogSource, String)> {
        let queue = match &raw.queue {
            Some(v) if !v.get_ref().trim().is_empty() => self.string(v)?,
            Some(v) => return Err(self.error(v, "`queue` is empty")),
            None => {
                return Err(self
                    .error(table, "a `rabbitmq` backlog needs `queue`")
                    .with_hint("queue = \"order-view\""));
            }
        };
        let management_url = match &raw.management_url {
            None => None,
            Some(v) => {
                let url = self.string(v)?;
                // The HTTP client is built without TLS (as for the targets; see Cargo.toml).
                if !url.starts_with("http://") {
                    return Err(self
                        .error(v, "`management_url` is the management plugin's http:// address (no TLS)")
                        .with_hint("management_url = \"http://guest:guest@127.0.0.1:15672\""));
                }
                Some(url)
            }
        };
        let name = queue.clone();
        Ok((BacklogSource::RabbitMq { queue, management_url }, name))
    }

    /// A key only other kinds read (`group` on a `nats` source) is a located error, not
    /// silently ignored.
    fn only_keys_of(&self, raw: &RawBacklog, own: &[&str]) -> Result<()> {
        let kind_keys = [
            ("stream", &raw.stream),
            ("group", &raw.group),
            ("consumer", &raw.consumer),
            ("head", &raw.head),
            ("checkpoint", &raw.checkpoint),
            ("checkpoints", &raw.checkpoints),
            ("oldest_unapplied", &raw.oldest_unapplied),
            ("queue", &raw.queue),
            ("management_url", &raw.management_url),
        ];
        match kind_keys.into_iter().find(|(key, value)| value.is_some() && !own.contains(key)) {
            Some((key, Some(v))) => {
                Err(self.error(v, format!("`{key}` is not a key of a `{}` backlog", raw.kind.get_ref())))
            }
            _ => Ok(()),
        }
    }

    /// MySQL/MariaDB sources read `head` and `checkpoint` only (one projection, no lag).
    fn mysql_sql(&self, raw: &RawBacklog, url: &str) -> Result<()> {
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if !matches!(scheme, "mysql" | "mariadb") {
            return Ok(());
        }
        for (key, value) in [("checkpoints", &raw.checkpoints), ("oldest_unapplied", &raw.oldest_unapplied)] {
            if let Some(v) = value {
                return Err(self
                    .error(
                        v,
                        format!(
                            "`{key}` is read on PostgreSQL only; a MySQL/MariaDB source reads `head` and `checkpoint`"
                        ),
                    )
                    .with_hint("one [[backlog]] per projection, each with its `checkpoint` query"));
            }
        }
        Ok(())
    }
}
