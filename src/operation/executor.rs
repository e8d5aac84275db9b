//! One operation, start to finish: render the request from its compiled templates,
//! send it within the timeout, classify the answer, keep its captures.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::{HeaderName, HeaderValue};
use rand::SeedableRng as _;
use rand::rngs::SmallRng;

use super::captures::{self, CaptureStore};
use super::created::{CreatedKeys, NO_KEY};
use super::flights::KeyFlights;
use super::{PROBE_HEADER, Probe, Sample, ValueChange, ValueChanges};
use crate::refs::OpRef;
use crate::scenario::template::{CaptureLookup, RenderContext, Template};
use crate::scenario::{AnswerRule, CaptureSpec, Delta, OperationSpec, RequestSpec};
use crate::target::{Failure, Reply, Request, Target, received_instant};

/// Operations finished by outcome (result.json's `ok`, `rejected`, `conflicts`, `errors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub ok: u64,
    pub rejected: u64,
    /// Per second, the timeline's `conflicts` come from here.
    pub conflicts: u64,
    pub errors: u64,
}

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An expected status.
    Ok,
    /// A `reject_status` or `reject` rule: refused by a business rule, no event expected.
    Rejected,
    /// A `conflict` rule: an optimistic-concurrency conflict. Not goodput and not an
    /// error; no event expected (issue 31).
    Conflict,
    /// An answer with a status neither expected nor a refusal.
    Status(u16),
    /// No answer.
    Failed(Failure),
}

impl Outcome {
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Status(_) | Outcome::Failed(_))
    }
    /// True when the target answered (the latency is known).
    pub fn answered(self) -> bool {
        !matches!(self, Outcome::Failed(_))
    }
}

/// An operation ready to render: templates compiled, header names parsed.
pub struct PreparedOp {
    name: String,
    method: http::Method,
    path: Template,
    body: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
    expect_status: Vec<u16>,
    reject_status: Vec<u16>,
    reject: Option<AnswerRule>,
    conflict: Option<AnswerRule>,
    captures: Vec<(String, CaptureSpec)>,
    uses_captures: bool,
    /// A template reads `{{ref}}`.
    uses_ref: bool,
    /// No template reads `{{key}}`.
    keyless: bool,
    /// `creates_key`: the capture that names a new entity.
    creates_key: Option<String>,
    /// `[verify] deltas`: this command's change to the read model's numbers, as (value
    /// index, delta); empty when it changes none.
    pub deltas: Vec<(usize, Delta)>,
    /// Its overlaps with other commands on its key are tracked (`Executor::flights`),
    /// for lag probes that read `{{key.acked}}` or `{{key.expected}}` (issue 31).
    pub watched: bool,
    /// Its request body is kept in `Executed` (`{{body./pointer}}` in `until`).
    pub keep_body: bool,
    /// (topic, key template) for commands produced to Kafka.
    kafka: Option<(String, Template)>,
}

impl PreparedOp {
    pub fn new(name: &str, spec: &RequestSpec, common_headers: &[(String, Template)]) -> anyhow::Result<PreparedOp> {
        let headers = common_headers
            .iter()
            .chain(&spec.headers)
            .map(|(name, template)| {
                let name = HeaderName::try_from(name.as_str())
                    .with_context(|| format!("`{name}` is not a valid header name"))?;
                Ok((name, template.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("operation `{name}`"))?;
        Ok(PreparedOp {
            name: name.to_owned(),
            method: spec.method.clone(),
            path: spec.path.clone(),
            body: spec.body.clone(),
            uses_captures: spec.uses_captures() || headers.iter().any(|(_, t)| t.uses_captures()),
            uses_ref: spec.templates().any(Template::uses_ref) || headers.iter().any(|(_, t)| t.uses_ref()),
            headers,
            expect_status: spec.expect_status.clone(),
            reject_status: spec.reject_status.clone(),
            reject: spec.reject.clone(),
            conflict: spec.conflict.clone(),
            captures: spec.captures.clone(),
            keyless: !spec.templates().any(|t| t.uses_key()),
            creates_key: None,
            deltas: Vec::new(),
            watched: false,
            keep_body: false,
            kafka: spec.kafka.as_ref().map(|k| (k.topic.clone(), k.key.clone())),
        })
    }

    /// An operation of the load: its request, plus what it creates.
    pub fn for_operation(spec: &OperationSpec, common_headers: &[(String, Template)]) -> anyhow::Result<PreparedOp> {
        let mut op = PreparedOp::new(&spec.name, &spec.request, common_headers)?;
        op.creates_key = spec.creates_key.clone();
        Ok(op)
    }

    /// Judges an answer: an expected status first (status only, as always), then a
    /// `conflict` rule, then a refusal (`reject_status` or the `reject` rule), else an
    /// unexpected status. A conflict is judged before a refusal because an app often
    /// answers both with the same status, and the conflict rule is the narrower one.
    fn classify(&self, status: u16, body: &[u8]) -> Outcome {
        let matches = |rule: &Option<AnswerRule>| rule.as_ref().is_some_and(|r| r.matches(status, body));
        if self.is_expected(status) {
            Outcome::Ok
        } else if matches(&self.conflict) {
            Outcome::Conflict
        } else if self.reject_status.contains(&status) || matches(&self.reject) {
            Outcome::Rejected
        } else {
            Outcome::Status(status)
        }
    }

    fn is_expected(&self, status: u16) -> bool {
        if self.expect_status.is_empty() { (200..300).contains(&status) } else { self.expect_status.contains(&status) }
    }
}

/// Everything an operation needs, shared by all in-flight operations.
pub struct Executor<T> {
    pub target: Arc<T>,
    pub ops: Vec<PreparedOp>,
    pub key_prefix: String,
    pub run_id: u32,
    pub shard: u32,
    pub seed: u64,
    pub timeout: Duration,
    /// Present when any template reads `{{capture.*}}` or any operation captures.
    pub captures: Option<Arc<CaptureStore>>,
    /// Ids made by the target (`creates_key`), usable as keys.
    pub created: Arc<CreatedKeys>,
    /// Sequence number of the next operation (setup and load share it, so refs never repeat).
    pub next_seq: std::sync::atomic::AtomicU64,
    /// Overlaps of `watched` commands on their keys, when a lag probe needs them.
    pub flights: Option<Arc<KeyFlights>>,
}

/// Timing and result of one executed operation.
pub struct Executed {
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// The answer's body (reference-counted, not copied); empty without an answer.
    pub body: bytes::Bytes,
    /// `capture` values taken from the answer.
    pub captured: Vec<(String, String)>,
    /// The key the operation acted on: the drawn one, or the id a create made.
    pub key: u64,
    /// Its `[verify] deltas` change, per value.
    pub change: ValueChanges,
    /// Another watched command on its key overlapped it, or one before it got no answer
    /// (see `flights`); false when not watched.
    pub overlapped: bool,
    /// The request body sent, when the operation keeps it (`PreparedOp::keep_body`).
    pub request_body: Option<String>,
}

impl Executed {
    /// The sample the collector records.
    pub fn sample(&self, op: usize, seq: u64, intended: Instant) -> Sample {
        Sample {
            op,
            seq,
            key: self.key,
            intended,
            sent: self.sent,
            done: self.done,
            outcome: self.outcome,
            change: self.change,
        }
    }
}

impl<T> Executor<T> {
    /// The scenario's name of operation `op`.
    pub fn op_name(&self, op: usize) -> &str {
        &self.ops[op].name
    }

    /// True when operation `op` reads no `{{key}}` (a global list).
    pub fn is_keyless(&self, op: usize) -> bool {
        self.ops[op].keyless
    }

    /// Takes the next sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

impl<T: Target> Executor<T> {
    /// Renders and sends operation `op` on key `key` as sequence number `seq`.
    pub async fn execute(&self, op: usize, key: u64, seq: u64) -> Executed {
        let spec = &self.ops[op];
        let request = self.render(spec, key, seq, None);
        let change = changes_of(&spec.deltas, request.body.as_deref());
        let request_body = if spec.keep_body { request.body.clone() } else { None };
        // A keyless command (a create) has no key yet: nothing on it can overlap.
        let flights = self.flights.as_deref().filter(|_| spec.watched && !spec.keyless && key != NO_KEY);
        let departure = flights.map(|f| f.depart(key));
        let sent = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.target.send(request)).await;
        let read = Instant::now();
        // The kernel's receive time where the transport has it: the generator's own
        // wake-up and queueing after the answer arrived are not the target's latency.
        let done = match &result {
            Ok(Ok(Reply { received: Some(at), .. })) => received_instant(*at, read).clamp(sent, read),
            _ => read,
        };
        let (outcome, reply) = match result {
            Err(_elapsed) => (Outcome::Failed(Failure::Timeout), None),
            Ok(Err(failure)) => (Outcome::Failed(failure), None),
            Ok(Ok(reply)) => (spec.classify(reply.status, &reply.body), Some(reply)),
        };
        let overlapped = match (flights, departure) {
            (Some(flights), Some(departure)) => flights.land(departure, outcome.answered()),
            _ => false,
        };
        let captured = match &reply {
            Some(reply) if outcome == Outcome::Ok && !spec.captures.is_empty() => {
                captures::extract(reply, &spec.captures)
            }
            _ => Vec::new(),
        };
        let mut key = key;
        if let Some(name) = &spec.creates_key
            && let Some((_, id)) = captured.iter().find(|(n, _)| n == name)
        {
            key = self.created.add(id.clone()).unwrap_or(NO_KEY);
        }
        if let Some(store) = &self.captures {
            store.put(key, captured.clone());
        }
        let body = reply.map_or_else(bytes::Bytes::new, |r| r.body);
        Executed { sent, done, outcome, body, captured, key, change, overlapped, request_body }
    }

    /// Sends operation `op` for a probe: same rendering, no figures, the command's own
    /// captures (when given) for `{{capture.NAME}}`.
    pub async fn fetch(
        &self,
        probe: Probe,
        op: usize,
        key: u64,
        seq: u64,
        captures: Option<&Vec<(String, String)>>,
    ) -> Result<Reply, Failure> {
        let request = self.render(&self.ops[op], key, seq, captures);
        self.send_for_probe(probe, request).await
    }

    /// What tells probe reads of query `op` for command `seq` on `key` apart: reads with
    /// the same identity read the same thing and may be shared. Random values and
    /// `{{now_ms}}` do not tell reads apart; `{{ref}}` makes each command's read its own.
    pub fn probe_read_identity(&self, op: usize, key: u64, seq: u64, captures: &[(String, String)]) -> String {
        let spec = &self.ops[op];
        let mut identity = String::new();
        if spec.uses_ref {
            let _ = writeln!(identity, "ref {seq}");
        }
        if !spec.keyless {
            let _ = writeln!(identity, "key {}", self.key_text(key));
        }
        if spec.uses_captures {
            for (name, value) in captures {
                let _ = writeln!(identity, "capture {name}={value}");
            }
        }
        identity
    }

    /// Reads page `page` of query `op` on `key` (`NO_KEY` for a keyless one): `PARAM=PAGE`
    /// appended to its query string.
    pub async fn fetch_page(&self, op: usize, key: u64, param: &str, page: u64) -> Result<Reply, Failure> {
        let mut request = self.render(&self.ops[op], key, 0, None);
        let joiner = if request.path.contains('?') { '&' } else { '?' };
        let _ = write!(request.path, "{joiner}{param}={page}");
        self.send_for_probe(Probe::Verify, request).await
    }

    async fn send_for_probe(&self, probe: Probe, mut request: Request) -> Result<Reply, Failure> {
        request.headers.push((HeaderName::from_static(PROBE_HEADER), HeaderValue::from_static(probe.name())));
        match tokio::time::timeout(self.timeout, self.target.send(request)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Failure::Timeout),
        }
    }

    /// The text of key `key` (prefix + index).
    pub fn key_text(&self, key: u64) -> String {
        if key >= super::created::CREATED_BASE {
            // A keyless operation renders no key; a created one its id.
            return self.created.get(key).unwrap_or_default();
        }
        let mut text = String::with_capacity(self.key_prefix.len() + 20);
        text.push_str(&self.key_prefix);
        let _ = write!(text, "{key}");
        text
    }

    /// The text of ref `seq` of this run.
    pub fn ref_text(&self, seq: u64) -> String {
        OpRef { run_id: self.run_id, shard: self.shard, seq }.to_string()
    }

    fn render(&self, spec: &PreparedOp, key: u64, seq: u64, captures: Option<&Vec<(String, String)>>) -> Request {
        // Each operation's random values come from its own generator, seeded by the
        // run seed and its sequence number: reproducible whatever the interleaving.
        let mut rng = SmallRng::seed_from_u64(self.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let key_text = self.key_text(key);
        let mut op_ref = String::with_capacity(32);
        OpRef { run_id: self.run_id, shard: self.shard, seq }.write_to(&mut op_ref);
        let key_captures = match (captures, &self.captures, spec.uses_captures) {
            (Some(given), _, _) => given.clone(),
            (None, Some(store), true) => store.get(key),
            _ => Vec::new(),
        };
        let ctx = RenderContext { key: &key_text, op_ref: &op_ref, captures: &key_captures as &dyn CaptureLookup };
        let mut path = String::with_capacity(64);
        spec.path.render_into(&ctx, &mut rng, &mut path);
        let body = spec.body.as_ref().map(|t| {
            let mut out = String::with_capacity(96);
            t.render_into(&ctx, &mut rng, &mut out);
            out
        });
        let headers = spec
            .headers
            .iter()
            .filter_map(|(name, template)| {
                let value = template.render(&ctx, &mut rng);
                // A rendered value that is not a valid header is left out rather than failing the run.
                HeaderValue::try_from(value).ok().map(|v| (name.clone(), v))
            })
            .collect();
        let kafka = spec.kafka.as_ref().map(|(topic, key)| (topic.clone(), key.render(&ctx, &mut rng)));
        Request { method: spec.method.clone(), path, body, headers, kafka }
    }
}

/// A command's changes to the numbers, from the body it sent (parsed once, and only for a
/// command with deltas).
fn changes_of(deltas: &[(usize, Delta)], body: Option<&str>) -> ValueChanges {
    let mut changes = ValueChanges::NONE;
    if deltas.is_empty() {
        return changes;
    }
    let json = body.and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok());
    for (index, delta) in deltas {
        if let Some(slot) = changes.0.get_mut(*index) {
            *slot = match &json {
                Some(json) => delta.of_json(json),
                None if delta.mode == crate::scenario::DeltaMode::Unchanged => ValueChange::None,
                None => ValueChange::Unknown,
            };
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(status: &[u16], body: Option<&str>) -> Option<AnswerRule> {
        Some(AnswerRule { status: status.to_vec(), body: body.map(|b| regex::bytes::Regex::new(b).unwrap()) })
    }

    fn withdraw(reject_status: &[u16], reject: Option<AnswerRule>, conflict: Option<AnswerRule>) -> PreparedOp {
        let spec = RequestSpec {
            method: http::Method::POST,
            path: Template::compile("/wallets/{{key}}/withdraw").unwrap(),
            body: None,
            headers: Vec::new(),
            expect_status: vec![200],
            reject_status: reject_status.to_vec(),
            reject,
            conflict,
            captures: Vec::new(),
            kafka: None,
        };
        PreparedOp::new("withdraw", &spec, &[]).unwrap()
    }

    #[test]
    fn an_answer_is_judged_by_status_and_body() {
        let op = withdraw(&[], rule(&[400], Some("insufficient")), rule(&[409, 400], Some("concurrent|duplicate key")));
        assert_eq!(op.classify(200, b"{}"), Outcome::Ok);
        assert_eq!(op.classify(400, br#"{"detail":"insufficient funds"}"#), Outcome::Rejected);
        assert_eq!(op.classify(400, br#"{"detail":"concurrent modification"}"#), Outcome::Conflict);
        assert_eq!(op.classify(409, b"duplicate key value"), Outcome::Conflict);
        // The status matches but neither body does: an unexpected answer, an error.
        assert_eq!(op.classify(400, br#"{"detail":"bad amount"}"#), Outcome::Status(400));
        // The body matches but the status is not the rule's.
        assert_eq!(op.classify(500, b"concurrent"), Outcome::Status(500));
    }

    #[test]
    fn a_conflict_is_judged_before_a_refusal() {
        let op = withdraw(&[400], None, rule(&[400], Some("concurrent")));
        assert_eq!(op.classify(400, b"insufficient, concurrent"), Outcome::Conflict);
        assert_eq!(op.classify(400, b"insufficient"), Outcome::Rejected);
        let both = withdraw(&[], rule(&[400], None), rule(&[400], None));
        assert_eq!(both.classify(400, b""), Outcome::Conflict);
    }

    #[test]
    fn a_rule_without_body_judges_by_status_alone() {
        let op = withdraw(&[], rule(&[409], None), None);
        assert_eq!(op.classify(409, b"anything"), Outcome::Rejected);
        assert!(!Outcome::Conflict.is_error() && Outcome::Conflict.answered());
    }
}
