//! Warnings about a scenario that loads but would give misleading figures (issue 30):
//! printed by `validate` and kept in a run's result.json `warnings`.

use super::{DeltaMode, ExpectedValue, KeySource, OpKind, OperationSpec, Scenario};

/// Every warning about `scenario`, in the order of its sections.
pub fn lint(scenario: &Scenario) -> Vec<String> {
    let mut warnings = Vec::new();
    warnings.extend(commands_without_delta(scenario));
    warnings.extend(commands_without_rows(scenario));
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
    commands_on_keys_of(scenario, query)
        .filter(|(index, _)| !deltas.iter().any(|(delta_op, _)| delta_op == index))
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

/// `[verify] count rows` names the commands whose rows are counted; the harness cannot see
/// which commands write a row, but two things in the scenario say one does: the command is
/// lag-probed on the count query itself (`[projection] commands` and `query`), or it
/// changes a `[verify] value` number (a delta other than "none": a fact that moves a
/// balance is the fact a history lists). Such a command missing from `rows` has its rows
/// unchecked, and a selector that also selects them counts them as another kind's
/// duplicates. `name = "none"` in `rows` says it writes none.
fn commands_without_rows(scenario: &Scenario) -> Vec<String> {
    let Some(verify) = &scenario.verify else { return Vec::new() };
    let Some(count) = &verify.count else { return Vec::new() };
    let list = &scenario.operations[count.query];
    let probed_on_list = |index: usize| {
        scenario.projection.as_ref().is_some_and(|p| p.query == count.query && p.commands.contains(&index))
    };
    let changes_a_number = |index: usize| {
        verify.values.iter().any(|v| match &v.expected {
            ExpectedValue::Deltas { deltas, .. } => {
                deltas.iter().any(|(op, delta)| *op == index && delta.mode != DeltaMode::Unchanged)
            }
            ExpectedValue::WriteSide { .. } => false,
        })
    };
    commands_on_keys_of(scenario, list)
        .filter(|(index, _)| {
            !count.rows.iter().any(|(counted, _)| counted == index) && !count.without_rows.contains(index)
        })
        .filter_map(|(index, op)| {
            let why = if probed_on_list(index) {
                format!("is lag-probed on `{}`", list.name)
            } else if changes_a_number(index) {
                "changes a `[verify] value` number".to_owned()
            } else {
                return None;
            };
            Some(format!(
                "[verify] count: command `{name}` {why} but is not in `rows`, so its rows on `{list}` are not \
                 counted (and a selector that also selects them counts them as another kind's duplicates): add \
                 `{name} = \"$[?@.operation=='…']\"`, or `{name} = \"none\"` if it writes no row",
                name = op.name,
                list = list.name
            ))
        })
        .collect()
}

/// The commands, with their index, that write keys `query` reads (the same key source,
/// and a key drawn): the ones a check of that query's answers has to account for.
fn commands_on_keys_of<'a>(
    scenario: &'a Scenario,
    query: &OperationSpec,
) -> impl Iterator<Item = (usize, &'a OperationSpec)> {
    let keys: KeySource = query.keys;
    scenario
        .operations
        .iter()
        .enumerate()
        .filter(move |(_, op)| op.kind == OpKind::Command && op.keys == keys && !op.is_keyless())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::lint;
    use crate::scenario::load_str;

    const WALLET: &str = include_str!("../../tests/it/scenarios/wallet-history.toml");
    const ROWS: &str = r#"rows = { deposit = "$[?@.operation=='CREDIT']", withdraw = "$[?@.operation=='DEBIT']" }"#;

    /// The count warnings of the wallet-history scenario with its `rows` replaced.
    fn count_warnings(rows: &str) -> Vec<String> {
        assert!(WALLET.contains(ROWS));
        let text = WALLET.replace(ROWS, rows);
        let scenario = load_str(&text, Path::new("wallet.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
        lint(&scenario).into_iter().filter(|w| w.starts_with("[verify] count")).collect()
    }

    #[test]
    fn a_command_that_moves_the_number_but_has_no_rows_is_warned() {
        assert!(count_warnings(ROWS).is_empty());
        let deposits_only = r#"rows = { deposit = "$[?@.operation=='CREDIT']" }"#;
        let warned = count_warnings(deposits_only);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("command `withdraw` changes a `[verify] value` number but is not in `rows`"));
        assert!(warned[0].contains("`withdraw = \"none\"` if it writes no row"), "{}", warned[0]);
        // Said to write no row: no warning.
        let none = r#"rows = { deposit = "$[?@.operation=='CREDIT']", withdraw = "none" }"#;
        assert!(count_warnings(none).is_empty());
    }

    #[test]
    fn a_command_probed_on_the_counted_list_but_not_counted_is_warned() {
        let deposits_only = r#"rows = { deposit = "$[?@.operation=='CREDIT']" }"#;
        // No delta for withdraw (`none`): only the probe on the history says it writes a row.
        let text = WALLET.replace(r#"withdraw = "-/amount""#, r#"withdraw = "none""#);
        let probe = "\n[projection]\ncommands = [\"deposit\", \"withdraw\"]\nquery = \"get_history\"\n\
                     until = \"count($[*]) >= {{key.acked}}\"\ntimeout = \"1s\"\n";
        let text = format!("{}{probe}", text.replace(ROWS, deposits_only));
        let scenario = load_str(&text, Path::new("wallet.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
        let warned: Vec<String> = lint(&scenario).into_iter().filter(|w| w.starts_with("[verify] count")).collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("command `withdraw` is lag-probed on `get_history` but is not in `rows`"));
    }

    #[test]
    fn a_command_on_the_value_keys_without_a_delta_is_warned() {
        let value_warnings = |text: &str| -> Vec<String> {
            let scenario = load_str(text, Path::new("wallet.toml"), &[]).unwrap_or_else(|e| panic!("{e}"));
            lint(&scenario).into_iter().filter(|w| w.starts_with("[verify] value")).collect()
        };
        let deltas = r#"deltas = { deposit = "/amount", withdraw = "-/amount" }"#;
        assert!(WALLET.contains(deltas));
        assert!(value_warnings(WALLET).is_empty());
        let warned = value_warnings(&WALLET.replace(deltas, r#"deltas = { deposit = "/amount" }"#));
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("command `withdraw` writes keys that `get_wallet` reads but is not in `deltas`"));
    }

    #[test]
    fn rows_that_are_all_none_are_an_error() {
        let text = WALLET.replace(ROWS, r#"rows = { deposit = "none" }"#);
        let error = load_str(&text, Path::new("wallet.toml"), &[]).unwrap_err().to_string();
        assert!(error.contains("every command in `rows` is \"none\""), "{error}");
    }
}
