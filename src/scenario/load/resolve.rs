//! `resolve = { query, select }` on a `creates_key` command (issue 31, item 5): the id of
//! a create that answers none (201, empty body, no `Location`) is found by reading.
//! Its polls follow `[projection]`'s interval and timeout (its defaults without one).

use std::time::Duration;

use super::{Checker, Result};
use crate::scenario::model::{KeySource, OpKind, OperationSpec, ProjectionSpec, ResolveSpec, StalenessSpec};
use crate::scenario::raw::{RawOperation, RawResolve, RawScenario};
use crate::scenario::selector::{Scope, Selector};
use crate::scenario::template::{NoCaptures, RenderContext};

/// `[projection]`'s defaults, for a scenario without one.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A ref as the run renders it, to check that a rendered `select` parses.
const SAMPLE_REF: &str = "0000abcd.0.17";

const HINT: &str = "resolve = { query = \"list_tasks\", select = \"$.data[?@.describe == '{{ref}} buy milk']._id\" }";

impl Checker<'_> {
    /// Checks every operation's `resolve` and puts it on the operation.
    pub(super) fn resolves(
        &self,
        raw: &RawScenario,
        operations: &mut [OperationSpec],
        projection: Option<&ProjectionSpec>,
        staleness: Option<&StalenessSpec>,
    ) -> Result<()> {
        let raws = raw.command.iter().map(|r| (r, OpKind::Command)).chain(raw.query.iter().map(|r| (r, OpKind::Query)));
        for (raw_op, kind) in raws {
            let Some(resolve) = &raw_op.resolve else { continue };
            let index = operations.iter().position(|o| o.name == *raw_op.name.get_ref()).expect("same operations");
            let spec = self.resolve(raw_op, kind, resolve.get_ref(), operations, projection)?;
            // A read-your-writes probe reading one key would read it right after the
            // create's answer, when the id is not known yet. (A `[projection]` probe of
            // such a create is its id search: `LagProbe::hand_over`.)
            if let Some(s) = staleness
                && s.commands.contains(&index)
                && !operations[s.query].is_keyless()
            {
                return Err(self
                    .error(
                        resolve,
                        format!(
                            "[staleness] reads `{}` with the key of `{}`, whose id is only found later by `resolve`",
                            operations[s.query].name,
                            raw_op.name.get_ref()
                        ),
                    )
                    .with_hint(format!(
                        "leave `{}` out of [staleness] commands, or read it with a query that lists everything",
                        raw_op.name.get_ref()
                    )));
            }
            operations[index].resolve = Some(spec);
        }
        Ok(())
    }

    fn resolve(
        &self,
        raw_op: &RawOperation,
        kind: OpKind,
        raw: &RawResolve,
        operations: &[OperationSpec],
        projection: Option<&ProjectionSpec>,
    ) -> Result<ResolveSpec> {
        let at = raw_op.resolve.as_ref().expect("called with one");
        if kind == OpKind::Query {
            return Err(self.error(at, "`resolve` finds the id a create made; a [[query]] creates nothing"));
        }
        if raw_op.creates_key.is_none() {
            return Err(self
                .error(at, "`resolve` finds the id of a create: the command needs `creates_key = \"NAME\"` too")
                .with_hint("creates_key = \"id\" (the resolved id is then {{capture.id}} on the new key)"));
        }
        let query = self.find(&raw.query, OpKind::Query, operations)?;
        let creator = operations.iter().find(|o| o.name == *raw_op.name.get_ref()).expect("same operations");
        let reader = &operations[query];
        if reader.keys == KeySource::Created {
            return Err(self
                .error(
                    &raw.query,
                    format!("`{}` reads a created key: the id it would need is the one to find", reader.name),
                )
                .with_hint("resolve with a query that lists the items (no {{key}}, or the create's own key)"));
        }
        if !reader.is_keyless() && creator.is_keyless() {
            return Err(self
                .error(
                    &raw.query,
                    format!("`{}` reads one key, but `{}` has no key to read it with", reader.name, creator.name),
                )
                .with_hint("resolve with a query that lists the items (no {{key}})"));
        }
        let select = self.template(&raw.select)?;
        if !select.uses_ref() {
            return Err(self
                .error(&raw.select, "`select` must find this create's item: put its `{{ref}}` in the selector")
                .with_hint(HINT));
        }
        // The rendered selector must parse, and read the body (headers are the create's).
        let rendered = select.render(
            &RenderContext { key: "k", op_ref: SAMPLE_REF, captures: &NoCaptures },
            &mut <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(0),
        );
        Selector::parse(&rendered, Scope::Body).map_err(|m| {
            let message = format!("`select` cannot select (its {{{{ref}}}} rendered as `{SAMPLE_REF}`): {m}");
            self.error(&raw.select, message).with_hint(HINT)
        })?;
        Ok(ResolveSpec {
            query,
            select,
            poll_interval: projection.map_or(DEFAULT_POLL_INTERVAL, |p| p.poll_interval),
            timeout: projection.map_or(DEFAULT_TIMEOUT, |p| p.timeout),
        })
    }
}
