//! Scenario errors that say where and what: file, line and column, the line itself
//! with a caret under the culprit, what was expected, and a hint when there is one.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Located(Box<Located>),
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
}

/// An error at a place in a scenario file.
#[derive(Debug)]
pub struct Located {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub line_text: String,
    /// Characters to underline (at least 1).
    pub width: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The bytes of the source the error is about.
    pub span: Range<usize>,
}

impl ScenarioError {
    /// An error about the bytes `span` of `source`.
    pub fn at(path: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        // A literal password in a URL on the shown line is masked (issue 16); the caret
        // follows the masked text.
        let line_text = super::redact::redact_urls(source[line_start..line_end].trim_end_matches('\r'));
        let line_chars = line_text.chars().count();
        let column = (super::redact::redact_urls(&source[line_start..start]).chars().count() + 1).min(line_chars + 1);
        let width = source[start..end.min(line_end)].chars().count().clamp(1, (line_chars + 1 - column).max(1));
        ScenarioError::Located(Box::new(Located {
            path: path.to_owned(),
            line: source[..start].matches('\n').count() + 1,
            column,
            line_text,
            width,
            message: message.into(),
            hint: None,
            span: start..end,
        }))
    }

    /// Adds a hint (how to fix it) to a located error.
    pub fn with_hint(mut self, hint: impl Into<String>) -> ScenarioError {
        if let ScenarioError::Located(located) = &mut self {
            located.hint = Some(hint.into());
        }
        self
    }

    /// The same error blamed on `--set arg` (issue 30: a value set on the command line was
    /// shown on a line of the scenario file that does not hold it). The hint follows.
    pub fn on_override(self, arg: &str) -> ScenarioError {
        let message = match &self {
            ScenarioError::Located(l) => match &l.hint {
                Some(hint) => format!("{} (help: {hint})", l.message),
                None => l.message.clone(),
            },
            other => other.message(),
        };
        ScenarioError::Override { arg: arg.to_owned(), message }
    }

    /// The message without the location (tests, summaries).
    pub fn message(&self) -> String {
        match self {
            ScenarioError::Located(l) => l.message.clone(),
            other => other.to_string(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        writeln!(f, "{}", self.message)?;
        writeln!(f, "{pad}--> {}:{}:{}", self.path.display(), self.line, self.column)?;
        writeln!(f, "{pad} |")?;
        writeln!(f, "{number} | {}", self.line_text)?;
        write!(f, "{pad} | {}{}", " ".repeat(self.column - 1), "^".repeat(self.width))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{pad} = help: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let source = "name = \"x\"\n[load]\nwarmpu = \"3s\"\n";
        let start = source.find("warmpu").unwrap();
        let e = ScenarioError::at(Path::new("s.toml"), source, start..start + 6, "unknown field `warmpu`")
            .with_hint("did you mean `warmup`?");
        assert_eq!(
            e.to_string(),
            "unknown field `warmpu`\n --> s.toml:3:1\n  |\n3 | warmpu = \"3s\"\n  | ^^^^^^\n  = help: did you mean `warmup`?"
        );
    }
}
