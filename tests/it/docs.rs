//! The user guide (`docs/src/`) and README.md are checked like code (issue 34): every
//! ```` ```toml ```` block must load as a scenario with the real loader (`cqrs-bench
//! validate`), and every relative link and `#anchor` must resolve, so an example that no
//! longer validates or a page that moved fails the suite.
//!
//! Code block kinds, by the info string:
//! - ```` ```toml ````: a whole scenario.
//! - ```` ```toml,fragment ````: a section or two; parsed as TOML, merged into
//!   `scenarios/quickstart.toml` (or the file named by `base=PATH`, from the repository
//!   root), then loaded. Merging: `[[command]]`/`[[query]]` replace the base's of the same
//!   name or are added, other `[[…]]` are added, a section the fragment writes replaces the
//!   base's, and a fragment of only sub-sections (`[projection.stages]`) adds to the base's.
//! - ```` ```toml,invalid ````: must be refused by `validate`.
//!
//! `${NAME}` references in the examples are set in `validate`'s environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use crate::support::{bench, root};

/// A markdown page of the guide or the README.
struct Page {
    path: PathBuf,
    text: String,
}

/// The pages checked: README.md and every page under docs/src (docs/fragments are not
/// part of the book).
fn pages() -> Vec<Page> {
    let mut paths = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.into_iter().map(|path| Page { text: std::fs::read_to_string(&path).unwrap(), path }).collect()
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// A fenced code block whose language is `toml`.
struct TomlBlock {
    at: String,
    attributes: Vec<String>,
    text: String,
}

impl TomlBlock {
    fn has(&self, attribute: &str) -> bool {
        self.attributes.iter().any(|a| a == attribute)
    }

    fn base(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| a.strip_prefix("base="))
    }
}

fn toml_blocks(page: &Page) -> Vec<TomlBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<String>, String)> = None;
    for (event, range) in Parser::new(&page.text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Fenced(info))) => {
                let mut parts = info.split(',').map(|p| p.trim().to_owned());
                if parts.next().as_deref() == Some("toml") {
                    open = Some((range.start, parts.collect(), String::new()));
                }
            }
            Event::Text(text) => {
                if let Some((_, _, body)) = &mut open {
                    body.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((start, attributes, text)) = open.take() {
                    let at = format!("{}:{}", shown(&page.path), line_of(&page.text, start));
                    blocks.push(TomlBlock { at, attributes, text });
                }
            }
            _ => {}
        }
    }
    blocks
}

/// Merges a fragment into a base scenario (the rules in the module docs).
fn merge(base: &mut toml::Table, fragment: toml::Table) {
    for (key, value) in fragment {
        match (value, base.get_mut(&key)) {
            (toml::Value::Array(items), Some(toml::Value::Array(existing))) => {
                for item in items {
                    let name = item.get("name").cloned();
                    let same = name.as_ref().and_then(|n| existing.iter().position(|e| e.get("name") == Some(n)));
                    match same {
                        Some(index) if key == "command" || key == "query" => existing[index] = item,
                        _ => existing.push(item),
                    }
                }
            }
            (toml::Value::Table(table), Some(toml::Value::Table(existing)))
                if table.values().all(toml::Value::is_table) =>
            {
                merge(existing, table)
            }
            (value, _) => {
                base.insert(key, value);
            }
        }
    }
}

/// `${NAME}` references in a text.
fn env_names(text: &str, names: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        names.insert(after[..end].to_owned());
        rest = &after[end..];
    }
}

fn file_name(at: &str) -> String {
    format!("{}.toml", at.replace(['/', ':', '.'], "_"))
}

#[test]
fn issue34_every_toml_example_in_the_guide_and_readme_validates() {
    let dir = tempfile::tempdir().unwrap();
    let (mut valid, mut invalid, mut env) = (Vec::new(), Vec::new(), BTreeSet::new());
    let mut counts = BTreeMap::<&str, usize>::new();
    for page in pages() {
        for block in toml_blocks(&page) {
            let text = if block.has("fragment") {
                let fragment: toml::Table = toml::from_str(&block.text)
                    .unwrap_or_else(|e| panic!("{}: a ```toml,fragment block is not TOML: {e}", block.at));
                let base_path = root().join(block.base().unwrap_or("scenarios/quickstart.toml"));
                let base_text = std::fs::read_to_string(&base_path)
                    .unwrap_or_else(|e| panic!("{}: base {}: {e}", block.at, base_path.display()));
                let mut base: toml::Table = toml::from_str(&base_text).unwrap();
                merge(&mut base, fragment);
                *counts.entry("fragment").or_default() += 1;
                toml::to_string(&base).unwrap()
            } else {
                *counts.entry(if block.has("invalid") { "invalid" } else { "whole" }).or_default() += 1;
                block.text.clone()
            };
            env_names(&text, &mut env);
            let path = dir.path().join(file_name(&block.at));
            std::fs::write(&path, &text).unwrap();
            if block.has("invalid") { invalid.push((block.at, path)) } else { valid.push(path) }
        }
    }
    println!("toml examples: {counts:?}");
    assert!(valid.len() >= 30, "the guide's examples were found: {}", valid.len());
    let with_env = |mut command: assert_cmd::Command| {
        for name in &env {
            command.env(name, "docs-example-value");
        }
        command
    };
    let output = with_env(bench()).arg("validate").args(&valid).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "examples that do not validate (file names say page and line):\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches(": ok (").count(), valid.len(), "one `ok` per example:\n{stdout}");
    // A warning in an example would teach a mistake.
    assert!(!stderr.contains("warning:"), "examples with warnings:\n{stderr}");
    for (at, path) in invalid {
        let output = with_env(bench()).arg("validate").arg(&path).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{at}: a ```toml,invalid example was accepted");
    }
}

/// The anchor ids of a page's headings, as mdBook (and GitHub) make them: lowercase
/// letters, digits, `-` and `_`; blanks become `-`; other characters dropped; a repeated
/// id gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Heading { level, .. }) if level <= HeadingLevel::H6 => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = &mut heading {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let title = heading.take().unwrap_or_default();
                let id: String = title
                    .trim()
                    .chars()
                    .filter_map(|c| {
                        if c.is_alphanumeric() || c == '_' || c == '-' {
                            Some(c.to_lowercase().next().unwrap_or(c))
                        } else if c.is_whitespace() {
                            Some('-')
                        } else {
                            None
                        }
                    })
                    .collect();
                let mut unique = id.clone();
                let mut n = 1;
                while ids.contains(&unique) {
                    unique = format!("{id}-{n}");
                    n += 1;
                }
                ids.insert(unique);
            }
            _ => {}
        }
    }
    ids
}

#[test]
fn issue34_every_relative_link_and_anchor_in_the_guide_and_readme_resolves() {
    let pages = pages();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        for (event, range) in Parser::new(&page.text).into_offset_iter() {
            let dest = match event {
                Event::Start(Tag::Link { dest_url, .. }) | Event::Start(Tag::Image { dest_url, .. }) => dest_url,
                _ => continue,
            };
            let at = format!("{}:{}", shown(&page.path), line_of(&page.text, range.start));
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = match dest.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (&*dest, None),
            };
            let target = if file.is_empty() { page.path.clone() } else { page.path.parent().unwrap().join(file) };
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{at}: `{dest}`: no such file"));
                continue;
            };
            if !target.starts_with(root().canonicalize().unwrap()) {
                broken.push(format!("{at}: `{dest}` leaves the repository"));
                continue;
            }
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    broken.push(format!("{at}: `{dest}`: no heading with id `{anchor}`"));
                }
            }
        }
    }
    println!("{checked} relative links checked");
    assert!(checked >= 50, "the guide's links were found: {checked}");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn issue34_every_page_of_the_guide_is_in_its_summary() {
    // mdBook renders only the pages SUMMARY.md lists: a page left out would be lost.
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).unwrap();
    for page in pages() {
        let Ok(relative) = page.path.strip_prefix(root().join("docs/src")) else { continue };
        let relative = relative.display().to_string();
        if relative != "SUMMARY.md" {
            assert!(summary.contains(&format!("]({relative})")), "docs/src/{relative} is not in SUMMARY.md");
        }
    }
}

#[test]
fn issue34_the_readme_keeps_the_two_commands_and_stays_short() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.lines().count() <= 250, "README.md has {} lines", readme.lines().count());
    assert!(readme.contains("cargo run --release -- run scenarios/quickstart.toml"));
    // The test command CI runs (.ci/run), exactly.
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "cargo test --locked"), ".ci/run runs `cargo test --locked`");
    assert!(readme.contains("\ncargo test --locked "), "the README's test command is CI's");
}

#[test]
fn issue34_fragments_merge_into_the_base_by_the_documented_rules() {
    let mut base: toml::Table = toml::from_str(
        "[target]\nkind = \"embedded\"\n[target.faults]\ndrop_every = 3\n[projection]\nquery = \"q\"\n\
         [[command]]\nname = \"a\"\npath = \"/a\"\n[[command]]\nname = \"b\"\npath = \"/b\"\n",
    )
    .unwrap();
    let fragment: toml::Table = toml::from_str(
        "[[command]]\nname = \"b\"\npath = \"/b2\"\n[[command]]\nname = \"c\"\npath = \"/c\"\n\
         [projection.stages]\napplied_at = \"/t\"\n[target.faults]\nduplicate_every = 2\n",
    )
    .unwrap();
    merge(&mut base, fragment);
    let paths: Vec<_> = base["command"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/a", "/b2", "/c"]);
    assert_eq!(base["projection"]["query"].as_str(), Some("q"), "a sub-section adds to its section");
    assert_eq!(base["projection"]["stages"]["applied_at"].as_str(), Some("/t"));
    assert_eq!(base["target"]["kind"].as_str(), Some("embedded"));
    assert!(base["target"]["faults"].get("drop_every").is_none(), "a section written replaces the base's");
}
