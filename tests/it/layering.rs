//! Issue 11: a run is wired in one place. The generator paces and sends, the probes
//! observe and read back; neither imports the other (nor `run`, which sits above both),
//! and `operation`, which both use to reach the target, imports neither.

use std::path::Path;

use crate::support::root;

/// Every `crate::…` path named in the `.rs` files under `dir`, with the file it is in.
fn crate_paths(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(crate_paths(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let tail: String = text[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                found.push((path.display().to_string(), tail));
            }
        }
    }
    found
}

fn assert_imports_none_of(module: &str, forbidden: &[&str]) {
    let wrong: Vec<_> = crate_paths(&root().join("src").join(module))
        .into_iter()
        .filter(|(_, target)| forbidden.contains(&target.as_str()))
        .collect();
    assert!(wrong.is_empty(), "`{module}` must not import {forbidden:?}: {wrong:?}");
}

#[test]
fn issue11_generator_and_probes_do_not_import_each_other() {
    assert_imports_none_of("generator", &["probe", "run", "report"]);
    assert_imports_none_of("probe", &["generator", "run"]);
    assert_imports_none_of("operation", &["generator", "probe", "run"]);
    assert_imports_none_of("target", &["generator", "probe", "run", "operation"]);
}
