//! Shell commands written in a scenario (`[[action]] exec`, `[capacity] scale`) and how
//! `${ENV}` reaches them (issue 32).
//!
//! Decision: the harness never pastes a variable's value into the command text. Pasted
//! text is parsed by `sh` as code, so `NS='default; touch pwned #'` ran `touch`, and the
//! resolved text (secrets and all) was the action's name in every output. Instead the
//! text is kept as written, each `${NAME}` it refers to is checked at load (a shell name,
//! set in the environment) and handed to `sh -c` as the environment variable `NAME`, so
//! `sh` expands `${NAME}` itself. An expansion's result is never parsed again: `;`, `#`,
//! `$(…)`, backquotes and quotes in a value stay characters. An *unquoted* expansion is
//! still split on blanks and glob-expanded, like any shell variable; write `"${NAME}"` to
//! keep a value one word.

use std::fmt;

/// A command line run with `sh -c TEXT`, with the variables it names in its environment.
#[derive(Clone, PartialEq)]
pub struct ShellCommand {
    /// As written in the scenario: `${NAME}` not resolved. Safe to print.
    pub text: String,
    /// `(NAME, value)` for each `${NAME}` of the text, read when the scenario was loaded.
    env: Vec<(String, String)>,
}

/// Why a command's `${…}` cannot be passed: at byte `offset` of the text.
#[derive(Debug, PartialEq)]
pub struct ShellError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

impl ShellCommand {
    /// Reads the `${NAME}` references of `text` from `lookup` (the environment).
    pub fn parse(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<ShellCommand, ShellError> {
        let mut env: Vec<(String, String)> = Vec::new();
        let mut at = 0;
        while let Some(found) = text[at..].find("${") {
            let start = at + found;
            let Some(length) = text[start + 2..].find('}') else { break };
            let name = &text[start + 2..start + 2 + length];
            at = start + 2 + length + 1;
            if !is_shell_name(name) {
                return Err(ShellError {
                    offset: start,
                    message: format!(
                        "`${{{name}}}` in a command: the harness passes variables to `sh`, which needs a plain name"
                    ),
                    hint: "write ${NAME} with letters, digits and `_` (sh's own forms such as ${A:-x} are not passed)"
                        .into(),
                });
            }
            let value = lookup(name).ok_or_else(|| ShellError {
                offset: start,
                message: format!("environment variable `{name}` is not set"),
                hint: format!("export {name}=… before the run"),
            })?;
            if !env.iter().any(|(n, _)| n == name) {
                env.push((name.to_owned(), value));
            }
        }
        Ok(ShellCommand { text: text.to_owned(), env })
    }

    /// A command with no variables (tests, built-in commands).
    pub fn plain(text: &str) -> ShellCommand {
        ShellCommand { text: text.to_owned(), env: Vec::new() }
    }

    /// `sh -c TEXT` (with `replace` applied to the text: `{{projectors}}`), its variables
    /// set, stdin closed, killed when dropped.
    pub fn command(&self, replace: &[(&str, &str)]) -> tokio::process::Command {
        let mut text = self.text.clone();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(text)
            .envs(self.env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// `output` (the command's own error output, quoted in a message) with the values of
    /// its variables masked: a failing `kubectl -n "${NS}"` may echo them.
    pub fn mask(&self, output: &str) -> String {
        let mut masked = output.to_owned();
        for (_, value) in &self.env {
            masked = super::redact::mask_value(&masked, value);
        }
        masked
    }

    /// The values it passes (secrets to keep out of every output).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.env.iter().map(|(_, v)| v.as_str())
    }
}

/// Names and masked values only: a scenario printed with `{:?}` leaks nothing.
impl fmt::Debug for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ShellCommand").field("text", &self.text).field("env", &names).finish()
    }
}

/// What `sh` expands from `${NAME}`: a letter or `_`, then letters, digits, `_`.
fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NS" => Some("default; touch pwned #".into()),
            "TOKEN" => Some("s3cr3t-token".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_checked_and_never_pasted() {
        let command = ShellCommand::parse("kubectl -n ${NS} scale --token=${TOKEN} ${NS}", env).unwrap();
        assert_eq!(command.text, "kubectl -n ${NS} scale --token=${TOKEN} ${NS}");
        assert_eq!(command.values().collect::<Vec<_>>(), ["default; touch pwned #", "s3cr3t-token"]);
        assert!(!format!("{command:?}").contains("s3cr3t"), "{command:?}");
        assert_eq!(command.mask("error: s3cr3t-token refused"), "error: *** refused");

        let unset = ShellCommand::parse("echo ${A} ${CQRS_BENCH_NOT_SET}", |n| (n == "A").then(|| "a".into()));
        assert_eq!(unset.unwrap_err().offset, 10);
        let sh_form = ShellCommand::parse("echo ${NS:-x}", env).unwrap_err();
        assert_eq!(sh_form.offset, 5);
        assert!(sh_form.message.contains("plain name"), "{sh_form:?}");
        assert!(ShellCommand::parse("echo $NS ${ unclosed", env).is_ok(), "sh's own business");
    }

    /// Issue 32 item 4: a value holding shell syntax is one argument, never code.
    #[tokio::test]
    async fn a_value_is_never_run_as_code() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let value = format!("default; touch {} #", pwned.display());
        let command = ShellCommand::parse("printf '%s|' ${NS} \"${NS}\"", |_| Some(value.clone())).unwrap();
        let output = command.command(&[]).output().await.unwrap();
        assert!(output.status.success());
        assert!(!pwned.exists(), "the value ran as a command");
        let printed = String::from_utf8(output.stdout).unwrap();
        // Unquoted: split on blanks, each word literal; quoted: one word.
        assert_eq!(printed, format!("default;|touch|{}|#|{value}|", pwned.display()));
    }
}
