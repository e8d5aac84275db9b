//! Warnings about a scenario that loads but would give misleading figures (issue 30):
//! printed by `validate` and kept in a run's result.json `warnings`.

use super::{ExpectedValue, KeySource, OpKind, Scenario};

/// Every warning about `scenario`, in the order of its sections.
pub fn lint(scenario: &Scenario) -> Vec<String> {
    let mut warnings = Vec::new();
    warnings.extend(commands_without_delta(scenario));
    warnings
}

/// `[verify] deltas` names the commands that change the number; any other command on the
/// same keys would count as changing nothing, so a cycle count that sets the number
/// outright reads as a mismatch (issue 30: "86 mismatched" against 65 truly stale rows).
fn commands_without_delta(scenario: &Scenario) -> Vec<String> {
    let Some(verify) = &scenario.verify else { return Vec::new() };
    // A command in any value's deltas is said to be accounted for (it may leave the others alone).
    let deltas: Vec<(usize, crate::scenario::Delta)> = verify
        .values
        .iter()
        .filter_map(|v| match &v.expected {
            ExpectedValue::Deltas { deltas, .. } => Some(deltas.iter().cloned()),
            ExpectedValue::WriteSide { .. } => None,
        })
        .flatten()
        .collect();
    if deltas.is_empty() {
        return Vec::new();
    }
    let query = &scenario.operations[verify.query];
    if query.is_keyless() {
        return Vec::new();
    }
    let keys: KeySource = query.keys;
    scenario
        .operations
        .iter()
        .enumerate()
        .filter(|(index, op)| {
            op.kind == OpKind::Command
                && op.keys == keys
                && !op.is_keyless()
                && !deltas.iter().any(|(delta_op, _)| delta_op == index)
        })
        .map(|(_, op)| {
            format!(
                "[verify] value: command `{name}` writes keys that `{query}` reads but is not in `deltas`, so it counts \
                 as changing nothing: add `{name} = \"/amount\"` (\"-/amount\" subtracts, \"=/qty\" sets the number), \
                 or `{name} = \"none\"` if it leaves the number alone",
                name = op.name,
                query = query.name
            )
        })
        .collect()
}
