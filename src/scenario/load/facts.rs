//! `[projection] until` reading the probed command's facts (issue 31): `{{key.acked}}`,
//! `{{key.expected}}`, `{{body./pointer}}` must have something to render from.

use toml::Spanned;

use super::{Checker, Result};
use crate::scenario::model::{ExpectedValue, OperationSpec, ProjectionSpec, VerifySpec};
use crate::scenario::raw::{RawProjection, RawStaleness};
use crate::scenario::template::FactName;

impl Checker<'_> {
    /// Each fact `until` reads must be known for every probed command.
    pub(super) fn check_probe_facts(
        &self,
        raw: &Spanned<RawProjection>,
        projection: &ProjectionSpec,
        verify: Option<&VerifySpec>,
        operations: &[OperationSpec],
    ) -> Result<()> {
        let until = &raw.get_ref().until;
        let probed = || projection.commands.iter().map(|&op| &operations[op]);
        for fact in projection.until.value.facts() {
            match fact {
                FactName::KeyAcked | FactName::KeyExpected(_) => {
                    if let Some(op) = probed().find(|o| o.is_keyless() && o.creates_key.is_none()) {
                        return Err(self
                            .error(until, format!("`{fact}` is per key, but probed command `{}` has no key", op.name))
                            .with_hint("probe commands that read {{key}} (or create one with `creates_key`)"));
                    }
                }
                FactName::Body(_) => {
                    if let Some(op) = probed().find(|o| o.request.body.is_none()) {
                        return Err(self
                            .error(
                                until,
                                format!("`{fact}` reads the request body, but probed command `{}` sends none", op.name),
                            )
                            .with_hint("list in `[projection] commands` only commands with a `body`"));
                    }
                }
            }
            if let FactName::KeyExpected(name) = fact {
                let values = verify.map_or(&[][..], |v| &v.values[..]);
                let names = || values.iter().map(|v| format!("`{}`", v.name)).collect::<Vec<_>>().join(", ");
                let value = match name {
                    None if values.len() > 1 => {
                        return Err(self
                            .error(
                                until,
                                format!("`[verify] value` has {} numbers ({}): say which", values.len(), names()),
                            )
                            .with_hint(format!("write {{{{key.expected.{}}}}}", values[0].name)));
                    }
                    None => values.first(),
                    Some(name) => match values.iter().find(|v| v.name == *name) {
                        Some(value) => Some(value),
                        None if values.is_empty() => None,
                        None => {
                            return Err(self
                                .error(
                                    until,
                                    format!("`[verify] value` has no number named `{name}` (it has {})", names()),
                                )
                                .with_hint("name a value with `name = \"on_hand\"` in `value = [{ … }]`"));
                        }
                    },
                };
                if !matches!(value.map(|v| &v.expected), Some(ExpectedValue::Deltas { .. })) {
                    return Err(self
                        .error(until, format!("`{fact}` is `[verify] value`'s expected number: it needs `[verify] value` with `deltas`"))
                        .with_hint("[verify] value = \"/balance\", deltas = { deposit = \"/amount\", withdraw = \"-/amount\" }"));
                }
            }
        }
        Ok(())
    }

    /// `[staleness]` without its own `until` takes `[projection]`'s, which it cannot render
    /// when it reads the probed command's facts.
    pub(super) fn check_staleness_facts(
        &self,
        raw: &Spanned<RawStaleness>,
        projection: Option<&ProjectionSpec>,
    ) -> Result<()> {
        if raw.get_ref().until.is_some() {
            return Ok(()); // its own: a fact in it is already a located template error
        }
        match projection.and_then(|p| p.until.value.facts().next()) {
            Some(fact) => Err(self
                .error(
                    raw,
                    format!("[staleness] takes `until` from [projection], whose `{fact}` only a lag probe can render"),
                )
                .with_hint("give [staleness] its own `until`, e.g. until = \"/version >= {{capture.version}}\"")),
            None => Ok(()),
        }
    }
}
