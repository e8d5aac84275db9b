//! The layering of src/: which module may name which. Issue 11: a run is wired in one place,
//! the generator paces and sends, the probes observe and read back; neither imports the other
//! (nor `run`, which sits above both), and `operation`, which both use to reach the target,
//! imports neither. Issue 34: no two top-level modules of src/ import each other, directly or
//! in a loop, and inside `reference/` the bank domain sits below the stores and the server.
//!
//! The files are read as Rust tokens (proc-macro2), so comments and strings don't count and
//! every form of a path does: `crate::a::B`, grouped `use crate::{a, b::C}`, `super::…`
//! (however many, counted from the module the token sits in, inline `mod tests` included),
//! `self::…`, `$crate::…`, and a module's own children named bare (`results::build`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

use crate::support::root;

/// A path a source file names, made absolute (segments from the crate root).
#[derive(Debug, Clone)]
struct Named {
    path: Vec<String>,
    /// `src/…/file.rs:line`, to say where.
    at: String,
    /// The name a `use` binds it to (its last segment or its `as` alias), for re-exports.
    binds: Option<String>,
}

/// A `.rs` file under src/ with the module path it defines (`src/a/b.rs` and `src/a/b/mod.rs`
/// are `a::b`; lib.rs is the root).
fn module_files(dir: &Path, src: &Path, out: &mut Vec<(PathBuf, Vec<String>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            module_files(&path, src, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            if module == ["main"] {
                continue; // the binary: a crate of its own, above the library
            }
            out.push((path, module));
        }
    }
}

/// Every path `file` names, resolved from the module it defines.
fn named_paths(file: &Path, module: &[String]) -> Vec<Named> {
    let text = std::fs::read_to_string(file).unwrap();
    let tokens = TokenStream::from_str(&text).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
    let shown = file.strip_prefix(root()).unwrap_or(file).display().to_string();
    let mut found = Vec::new();
    scan(tokens, module, &shown, &mut found);
    found
}

fn is_ident(tt: Option<&TokenTree>, name: &str) -> bool {
    matches!(tt, Some(TokenTree::Ident(i)) if i == name)
}

/// `::` at `tokens[i]`.
fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

fn scan(stream: TokenStream, module: &[String], file: &str, found: &mut Vec<Named>) {
    scan_scope(stream, module, &BTreeSet::new(), file, found);
}

/// One block of tokens in `module`; `outer` holds the children declared around it.
fn scan_scope(stream: TokenStream, module: &[String], outer: &BTreeSet<String>, file: &str, found: &mut Vec<Named>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    // The children the module declares (`mod x;` or `mod x { … }`), which it may name bare.
    let mut children = outer.clone();
    children.extend(tokens.windows(2).filter(|w| is_ident(Some(&w[0]), "mod")).filter_map(|w| match &w[1] {
        TokenTree::Ident(name) => Some(name.to_string()),
        _ => None,
    }));
    let mut i = 0;
    while i < tokens.len() {
        let before = i.checked_sub(1).and_then(|b| tokens.get(b));
        let after_sep = i >= 2 && is_path_sep(&tokens, i - 2);
        match &tokens[i] {
            TokenTree::Ident(word) if word == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                    && body.delimiter() == Delimiter::Brace
                {
                    let mut inner = module.to_vec();
                    inner.push(name.to_string());
                    scan(body.stream(), &inner, file, found);
                    i += 3;
                    continue;
                }
            }
            TokenTree::Ident(word) if !after_sep && is_path_sep(&tokens, i + 1) => {
                let start = word.to_string();
                let base: Option<Vec<String>> = match start.as_str() {
                    "crate" => Some(Vec::new()),
                    "self" => Some(module.to_vec()),
                    "super" => Some(module[..module.len().saturating_sub(1)].to_vec()),
                    bare if children.contains(bare) => Some([module, &[bare.to_string()]].concat()),
                    _ => None,
                };
                if let Some(base) = base {
                    let in_use = is_ident(before, "use");
                    let line = word.span().start().line;
                    let end = read_path(&tokens, i + 1, base, in_use, &format!("{file}:{line}"), found);
                    i = end;
                    continue;
                }
            }
            TokenTree::Group(group) => scan_scope(group.stream(), module, &children, file, found),
            _ => {}
        }
        i += 1;
    }
}

/// Reads `::seg::seg…` from `tokens[i]` onto `base`, recording what it names; returns the
/// index after the path.
fn read_path(
    tokens: &[TokenTree],
    mut i: usize,
    mut path: Vec<String>,
    in_use: bool,
    at: &str,
    found: &mut Vec<Named>,
) -> usize {
    while is_path_sep(tokens, i) {
        match tokens.get(i + 2) {
            Some(TokenTree::Ident(seg)) if seg == "super" => {
                path.pop();
            }
            Some(TokenTree::Ident(seg)) => path.push(seg.to_string()),
            Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                read_use_group(group.stream(), &path, in_use, at, found);
                return i + 3;
            }
            Some(TokenTree::Punct(p)) if p.as_char() == '*' => {
                found.push(Named { path, at: at.to_string(), binds: None });
                return i + 3;
            }
            _ => break, // `::<T>` and the like: the path ends here
        }
        i += 3;
    }
    let binds = in_use.then(|| match (tokens.get(i), tokens.get(i + 1)) {
        (Some(TokenTree::Ident(kw)), Some(TokenTree::Ident(alias))) if kw == "as" => alias.to_string(),
        _ => path.last().cloned().unwrap_or_default(),
    });
    found.push(Named { path, at: at.to_string(), binds });
    i
}

/// The inside of `use prefix::{a, b::{c, d as e}, self}`.
fn read_use_group(stream: TokenStream, prefix: &[String], in_use: bool, at: &str, found: &mut Vec<Named>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    for item in tokens.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
        match item.first() {
            Some(TokenTree::Ident(first)) if first == "self" => {
                let binds = in_use.then(|| prefix.last().cloned().unwrap_or_default());
                found.push(Named { path: prefix.to_vec(), at: at.to_string(), binds });
            }
            Some(TokenTree::Ident(first)) => {
                let path = [prefix, &[first.to_string()]].concat();
                read_path(item, 1, path, in_use, at, found);
            }
            Some(TokenTree::Group(group)) => read_use_group(group.stream(), prefix, in_use, at, found),
            _ => {}
        }
    }
}

/// The graph of the modules directly inside `folder` (`[]` for src/ itself): for each module,
/// the modules it names, with where. The folder's own file (lib.rs, mod.rs) is a node of its
/// own when the others name items it defines.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn graph_inside(folder: &[&str], allowed: &[Allowed]) -> Graph {
    let src = root().join("src");
    let folder: Vec<String> = folder.iter().map(|s| s.to_string()).collect();
    let dir = folder.iter().fold(src.clone(), |d, s| d.join(s));
    let children: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| !["mod", "lib", "main"].contains(&name.as_str()))
        .collect();
    let own_file = if folder.is_empty() { "lib.rs".to_string() } else { format!("{}/mod.rs", folder.join("/")) };

    let mut files = Vec::new();
    module_files(&dir, &src, &mut files);
    let named: Vec<(Vec<String>, Vec<Named>)> =
        files.iter().map(|(file, module)| (module.clone(), named_paths(file, module))).collect();
    // What the folder's own file re-exports: `pub use child::X` makes `folder::X` the child's.
    let reexports: BTreeMap<String, String> = named
        .iter()
        .filter(|(module, _)| *module == folder)
        .flat_map(|(_, paths)| paths)
        .filter_map(|n| {
            let child = n.path.get(folder.len()).filter(|c| n.path.starts_with(&folder) && children.contains(*c))?;
            Some((n.binds.clone()?, child.clone()))
        })
        .collect();
    let node_of = |path: &[String]| -> Option<String> {
        if !path.starts_with(&folder) {
            return None;
        }
        match path.get(folder.len()) {
            Some(seg) if children.contains(seg) => Some(seg.clone()),
            Some(seg) => Some(reexports.get(seg).cloned().unwrap_or_else(|| own_file.clone())),
            None => None, // the folder itself (`use super::*` from a child): no item named
        }
    };

    let mut graph = Graph::new();
    for (module, paths) in &named {
        let Some(from) = node_of(module).or_else(|| (*module == folder).then(|| own_file.clone())) else {
            continue;
        };
        for n in paths {
            let file = n.at.split(':').next().unwrap_or_default();
            let to = node_of(&n.path).filter(|to| *to != from);
            if let Some(to) = to.filter(|to| !allowed.iter().any(|a| a.file == file && a.to == to)) {
                graph.entry(from.clone()).or_default().entry(to).or_default().push(format!(
                    "{} {}",
                    n.at,
                    n.path.join("::")
                ));
            }
        }
    }
    graph
}

/// The loops of `graph`: each strongly connected set of two or more modules, told as one
/// shortest loop through it and every edge inside it with where it is named.
fn cycles(graph: &Graph) -> Vec<String> {
    let reaches = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_string()]);
        while let Some(node) = queue.pop_front() {
            for next in graph.get(&node).into_iter().flat_map(|edges| edges.keys()) {
                if seen.insert(next.clone()) {
                    queue.push_back(next.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut told = Vec::new();
    for start in graph.keys() {
        if done.contains(start) || !reaches(start).contains(start) {
            continue;
        }
        let set: BTreeSet<String> = reaches(start).into_iter().filter(|n| reaches(n).contains(start)).collect();
        done.extend(set.iter().cloned());
        // One shortest loop from `start` back to it, by breadth first.
        let mut back: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        'search: while let Some(node) = queue.pop_front() {
            for next in graph[&node].keys().filter(|n| set.contains(*n)) {
                if next == start {
                    back.insert(start.clone(), node.clone());
                    break 'search;
                }
                if !back.contains_key(next) {
                    back.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut loop_ = vec![start.clone()];
        let mut at = back[start].clone();
        while at != *start {
            loop_.push(at.clone());
            at = back[&at].clone();
        }
        loop_.push(start.clone());
        loop_.reverse();
        let mut text = format!("loop {} (among {:?}):", loop_.join(" → "), set);
        for from in &set {
            for (to, wheres) in graph[from].iter().filter(|(to, _)| set.contains(*to)) {
                text += &format!("\n    {from} → {to}: {} ({} in all)", wheres[0], wheres.len());
            }
        }
        told.push(text);
    }
    told
}

/// An edge left in place, with why: a file's paths to one module that the graph skips.
struct Allowed {
    file: &'static str,
    to: &'static str,
    #[allow(dead_code, reason = "read by whoever reads the list")]
    why: &'static str,
}

/// Test code only: the scenario's fuzz tests run the generator's schedule on every scenario
/// the loader accepts, to show `run` can carry out whatever passes the checks. Cutting it
/// means moving that fuzzing machinery out of the scenario's tests.
const ALLOWED: &[Allowed] = &[Allowed {
    file: "src/scenario/tests.rs",
    to: "generator",
    why: "issue16 fuzz: an accepted scenario's schedule must not panic",
}];

fn assert_no_cycles(folder: &[&str], allowed: &[Allowed]) {
    for a in allowed {
        let src = root().join(a.file);
        let module: Vec<String> =
            a.file.trim_start_matches("src/").trim_end_matches(".rs").split('/').map(String::from).collect();
        assert!(
            named_paths(&src, &module).iter().any(|n| n.path.first().map(String::as_str) == Some(a.to)),
            "{} names nothing of `{}` any more: remove it from ALLOWED",
            a.file,
            a.to
        );
    }
    let found = cycles(&graph_inside(folder, allowed));
    assert!(found.is_empty(), "modules inside src/{} import each other:\n{}", folder.join("/"), found.join("\n"));
}

#[test]
fn issue34_no_two_top_level_modules_import_each_other() {
    assert_no_cycles(&[], ALLOWED);
}

#[test]
fn issue34_reference_bank_sits_below_its_stores_and_server() {
    assert_no_cycles(&["reference"], &[]);
}

/// The scanner itself: each form of a path, resolved from where it stands.
#[test]
fn issue34_every_form_of_a_path_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.rs");
    std::fs::write(
        &file,
        "use crate::{x::{Y, self}, z as w};\n\
         // crate::in_a_comment\n\
         fn f() { let s = \"crate::in_a_string\"; super::sibling::g(); child::h(); }\n\
         mod child;\n\
         mod tests { use super::super::up::*; fn t() { $crate::m::n(); self::k(); } }\n",
    )
    .unwrap();
    let module = ["a".to_string(), "b".to_string()];
    let seen: BTreeSet<String> = named_paths(&file, &module).into_iter().map(|n| n.path.join("::")).collect();
    let expected: BTreeSet<String> =
        ["x::Y", "x", "z", "a::sibling::g", "a::b::child::h", "a::up", "m::n", "a::b::tests::k"]
            .map(String::from)
            .into();
    assert_eq!(seen, expected);
}

/// Every `crate::…` path named in the `.rs` files under `dir`, with the file it is in.
fn crate_paths(dir: &Path) -> Vec<(String, String)> {
    let src = root().join("src");
    let mut files = Vec::new();
    module_files(dir, &src, &mut files);
    files
        .iter()
        .flat_map(|(file, module)| named_paths(file, module))
        .filter_map(|n| Some((n.at, n.path.first()?.clone())))
        .collect()
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

/// Issue 34 item 4: the services' variants (crates/reference) build on the harness's
/// `cqrs_bench::reference` (the bank domain, the memory target, the HTTP API, the flags)
/// and on nothing else of the harness, so they stay a target the harness reaches from
/// outside.
#[test]
fn issue34_the_reference_crate_names_only_the_harness_reference() {
    fn walk(stream: TokenStream, at: &Path, wrong: &mut Vec<String>) {
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => walk(group.stream(), at, wrong),
                TokenTree::Ident(ident) if ident == "cqrs_bench" => {
                    let next = tokens.get(i + 3);
                    let is_reference = matches!(next, Some(TokenTree::Ident(name)) if name == "reference");
                    if !is_reference {
                        let line = ident.span().start().line;
                        wrong.push(format!(
                            "{}:{line}: cqrs_bench::{}",
                            at.display(),
                            next.map_or(String::new(), |t| t.to_string())
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    let mut files = Vec::new();
    let crate_dir = root().join("crates/reference");
    let mut dirs = vec![crate_dir.join("src"), crate_dir.join("tests")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 10, "crates/reference's sources not found: {files:?}");
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let stream = TokenStream::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        walk(stream, file.strip_prefix(root()).unwrap(), &mut wrong);
    }
    assert!(wrong.is_empty(), "crates/reference names the harness beyond cqrs_bench::reference:\n{}", wrong.join("\n"));
}
