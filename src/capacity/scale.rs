//! Getting the target to N projectors (issue 10): the embedded memory target is started
//! with N; a reference variant the harness serves itself is restarted with
//! `--projectors N`; any other system runs the scenario's `scale` command. Then the
//! target is polled until it answers (bounded by `ready_timeout`) and left `settle`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::exit::{RunFailure, Usage};
use crate::scenario::{CapacitySpec, Scaler, Scenario, ShellCommand, TargetKind};

/// Why an HTTP target without `scale` or `serve` cannot be planned for.
pub const CANNOT_SCALE: &str = "capacity cannot change this target's projector count: add to the scenario [capacity] \
     scale = \"COMMAND with {{projectors}}\" (e.g. kubectl scale … --replicas={{projectors}}), \
     or serve = \"--variant …\" for a reference variant the harness starts itself";

/// Lines of a failing scale command's output quoted in the error.
const QUOTED_LINES: usize = 5;

/// The scenario as it reaches N projectors, and the server the harness started for it.
pub struct Scaled {
    pub scenario: Scenario,
    pub server: Option<Child>,
}

impl Scaled {
    /// Stops a server the harness started (it held the only copy of its mock broker).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.as_mut() {
            let _ = server.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
        }
    }
}

pub async fn scale_to(base: &Scenario, projectors: usize, log_dir: &Path) -> anyhow::Result<Scaled> {
    let spec = &base.capacity;
    let mut scenario = base.clone();
    let server = match &spec.scaler {
        Scaler::Embedded => {
            let TargetKind::Embedded(config) = &mut scenario.target.kind else {
                return Err(Usage(anyhow::anyhow!("the embedded scaler needs target kind = \"embedded\"")).into());
            };
            config.projectors = projectors;
            None
        }
        Scaler::Serve(args) => Some(serve(&mut scenario, args, projectors, spec, log_dir).await?),
        Scaler::Command(command) => {
            run_scale_command(command, projectors, spec.ready_timeout).await?;
            None
        }
        Scaler::None => return Err(Usage(anyhow::anyhow!(CANNOT_SCALE)).into()),
    };
    if let TargetKind::Http { base_url, label } = &scenario.target.kind {
        wait_until_answering(base_url, label, spec.ready_timeout).await?;
    }
    if !spec.settle.is_zero() {
        tokio::time::sleep(spec.settle).await;
    }
    Ok(Scaled { scenario, server })
}

/// Starts `cqrs-bench target serve ARGS --projectors N --listen 127.0.0.1:0` and points
/// the scenario (and its `[bus]`, when the server names its broker) at it.
async fn serve(
    scenario: &mut Scenario,
    args: &[String],
    projectors: usize,
    spec: &CapacitySpec,
    log_dir: &Path,
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the cqrs-bench executable")?;
    std::fs::create_dir_all(log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let log_path = log_dir.join("serve.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = Command::new(exe)
        .args(["target", "serve"])
        .args(args)
        .args(["--projectors", &projectors.to_string(), "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting `cqrs-bench target serve`")?;
    let stdout = child.stdout.take().context("the server's output")?;
    // The arguments as shown: resolved `${ENV}` values masked (issue 32).
    let shown = crate::scenario::redact::mask_all(&args.join(" "), scenario.secrets.iter().map(String::as_str));
    let mut lines = BufReader::new(stdout).lines();
    let mut kafka: Option<(String, String, String)> = None;
    let deadline = tokio::time::Instant::now() + spec.ready_timeout;
    let url = loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.trim().to_owned();
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["kafka", brokers, "topic", topic, "group", group] = words[..] {
                    kafka = Some((brokers.into(), topic.into(), group.into()));
                }
            }
            Ok(_) => {
                let _ = child.wait().await;
                return Err(RunFailure(anyhow::anyhow!(
                    "`target serve {shown}` stopped before it listened; see {}",
                    log_path.display()
                ))
                .into());
            }
            Err(_) => {
                return Err(RunFailure(anyhow::anyhow!(
                    "`target serve {shown}` did not listen within {:?}; see {}",
                    spec.ready_timeout,
                    log_path.display()
                ))
                .into());
            }
        }
    };
    // Keep reading (and dropping) its output, so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    scenario.target.kind = TargetKind::Http { base_url: url.clone(), label: url };
    if let (Some(bus), Some((brokers, topic, group))) = (scenario.bus.as_mut(), kafka) {
        bus.brokers = brokers;
        bus.topic = topic;
        bus.consumer_groups = vec![group];
    }
    Ok(child)
}

/// Runs the `scale` command with `{{projectors}}` filled in, through `sh -c`, its `${ENV}`
/// passed as variables (issue 32: pasted values ran as shell code). Errors quote the
/// command as written and its output with those values masked.
async fn run_scale_command(command: &ShellCommand, projectors: usize, timeout: Duration) -> anyhow::Result<()> {
    let count = projectors.to_string();
    let shown = command.text.replace("{{projectors}}", &count);
    let output = command.command(&[("{{projectors}}", &count)]).output();
    let output = tokio::time::timeout(timeout, output)
        .await
        .map_err(|_| RunFailure(anyhow::anyhow!("scale command `{shown}` did not finish within {timeout:?}")))?
        .with_context(|| format!("running scale command `{shown}`"))?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = text.lines().rev().take(QUOTED_LINES).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(RunFailure(anyhow::anyhow!(
            "scale command `{shown}` failed ({}): {}",
            output.status,
            command.mask(&tail.join(" / "))
        ))
        .into());
    }
    Ok(())
}

/// Polls the target until any HTTP answer comes back.
async fn wait_until_answering(base_url: &str, label: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().context("an HTTP client")?;
    let deadline = Instant::now() + timeout;
    loop {
        let error = match client.get(base_url).send().await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(RunFailure(anyhow::anyhow!(
                "target {label} did not answer within {timeout:?} of scaling: {error}"
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_scale_command_is_quoted() {
        let failing = ShellCommand::plain("echo scaling to {{projectors}} >&2; exit 3");
        let error = run_scale_command(&failing, 4, Duration::from_secs(10)).await.unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("scaling to 4") && text.contains("exit status: 3"), "{text}");
        let two = ShellCommand::plain("test {{projectors}} -eq 2");
        assert!(run_scale_command(&two, 2, Duration::from_secs(10)).await.is_ok());
    }

    /// Issue 32 item 4: `NS='default; touch pwned #'` ran `touch`, and the failure printed
    /// the resolved command. Now the value is a variable of `sh`, and the error quotes the
    /// command as written, the value masked in the output it quotes.
    #[tokio::test]
    async fn issue32_a_scale_value_is_never_code_nor_printed() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let value = format!("default; touch {} #", pwned.display());
        let text = "echo \"namespace ${NS} not found\" >&2; test {{projectors}} -eq 9 # ${NS}";
        let command = ShellCommand::parse(text, |_| Some(value.clone())).unwrap();
        let error = run_scale_command(&command, 2, Duration::from_secs(10)).await.unwrap_err();
        assert!(!pwned.exists(), "the value ran as a command");
        let message = format!("{error:#}");
        assert!(!message.contains("default;") && !message.contains("touch"), "{message}");
        assert!(message.contains("`echo \"namespace ${NS} not found\" >&2; test 2 -eq 9 # ${NS}`"), "{message}");
        assert!(message.contains("namespace *** not found"), "{message}");
    }

    #[tokio::test]
    async fn a_scale_command_that_hangs_is_cut() {
        let started = Instant::now();
        let hanging = ShellCommand::plain("sleep 30 # {{projectors}}");
        let error = run_scale_command(&hanging, 1, Duration::from_millis(300)).await.unwrap_err();
        assert!(format!("{error:#}").contains("did not finish"), "{error:#}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
