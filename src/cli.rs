//! The command line (PRODUCT §3), clap derive only.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "cqrs-bench", version, about = "Load-testing and benchmark harness for CQRS systems")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario and judge it against its SLOs (exit 0 pass, 1 SLO violated, 2 bad input, 3 run failed).
    Run(RunArgs),
    /// Parse and check scenario files without sending traffic.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Override a key by dotted path, e.g. `load.stages.0.rate=500`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Also read one answer of each probe and verify query from this target (GETs only)
        /// and warn where a selector does not fit its shape.
        #[arg(long, value_name = "URL")]
        target: Option<String>,
        /// With --target: send ONE create (the first command with `creates_key`; its id
        /// found by reading when it has `resolve`) so queries on created keys can be
        /// checked with an id the target made. It writes to the target.
        #[arg(long, requires = "target")]
        write_one: bool,
    },
    /// Rebuild plots, report.html and junit.xml of run folders from their result.json.
    Report {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
    },
    /// Put runs side by side; with --baseline, say per figure whether a change is real
    /// (bootstrap over the per-second figures) and exit 1 when one regressed.
    Compare {
        /// Run folders, or `run --repeat` folders (a set of runs each).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The run(s) the others are judged against; repeat it, or name a `run --repeat`
        /// folder, for a baseline set whose spread widens the noise band.
        #[arg(long)]
        baseline: Vec<PathBuf>,
        /// Allowed regression in percent, e.g. `10%` or `10` [default: 10].
        #[arg(long, value_parser = parse_percent)]
        max_regression: Option<f64>,
        /// Changes whose 95 % interval reaches into ±this are noise [default: 5%].
        #[arg(long, value_parser = parse_percent)]
        noise: Option<f64>,
        /// Folder for compare.md and the overlaid plots [default: reports/compare-<UTC timestamp>/].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Combine the results of the shards of one run (`run --shard I/N`) into one: histograms
    /// added, counts and timelines summed, SLOs judged on the merged figures.
    Merge {
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Folder of the merged result.
        #[arg(long)]
        out: PathBuf,
        /// One line with the verdict and the folder.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Find the highest rate the target sustains within the scenario's SLOs, with no
    /// dropped operations and no growing backlog (steps set by `[saturate]`).
    Saturate(SaturateArgs),
    /// Measure the highest sustainable event rate at several projector counts, fit the
    /// Universal Scalability Law, and say how many projectors a target rate needs.
    Capacity(CapacityArgs),
    /// Write a commented starter scenario.
    Init {
        /// Scenario name; the file is NAME.toml.
        #[arg(default_value = "my-scenario")]
        name: String,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of a scenario file or of result.json, for editors and tools
    /// (e.g. `cqrs-bench schema scenario > cqrs-bench.schema.json`, the file `init`'s
    /// `#:schema` line names).
    Schema {
        /// Which file the schema describes.
        #[arg(value_enum)]
        of: SchemaOf,
    },
    /// Reference CQRS targets.
    #[command(subcommand)]
    Target(TargetCommand),
}

/// What `cqrs-bench schema` describes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOf {
    /// A scenario file (TOML, checked as the JSON it converts to).
    Scenario,
    /// result.json.
    Result,
}

#[derive(Subcommand, Debug)]
pub enum TargetCommand {
    /// Serve a reference target over HTTP until Ctrl-C.
    Serve(Box<crate::reference::ServeArgs>),
    /// Rebuild the event-sourced read model from its event store; prints the time and events/s.
    Replay(crate::reference::ReplayArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    pub scenario: PathBuf,
    /// Results folder [default: reports/<scenario>-<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a scenario key by dotted path, e.g. `load.stages.0.rate=500` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Send the load to this base URL (switches an embedded scenario to HTTP).
    #[arg(long, env = "CQRS_BENCH_TARGET")]
    pub target: Option<String>,
    /// Run the stages for this long: cut them short, or stretch the last one.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Scale every stage so the peak rate (or user count) is R, keeping the shape.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seed for every random choice (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// This process runs shard I of N: 1/N of the rate, its own refs and random stream.
    /// `auto/N` takes I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Start the load at this wall-clock time (RFC 3339, e.g. 2026-11-24T10:00:00Z), so
    /// the shards of one run line up their schedules. Also names the run (its run id).
    #[arg(long, value_name = "TIME", value_parser = parse_start_at, env = "CQRS_BENCH_START_AT")]
    pub start_at: Option<std::time::SystemTime>,
    /// The run id in every ref (8 hex digits) [default: from --start-at and the scenario's
    /// name, so shards started alike agree; else random].
    #[arg(long, value_name = "HEX", value_parser = parse_run_id)]
    pub run_id: Option<u32>,
    /// No live progress and no summary: one line with the verdict and the results folder.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print result.json to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Run the scenario K times in a row into OUT/run-1 … run-K and summarise the spread
    /// (OUT/repeat.md): a baseline set for `compare --baseline OUT`.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: Option<u32>,
    /// Generator threads, each with its own connections and share of the schedule
    /// [default: the machine's cores]. Like `wrk -t`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Serve live Prometheus/OpenMetrics metrics at http://ADDR/metrics for the whole run
    /// (setup, load, probes, verification), e.g. `127.0.0.1:9464` (docs/src/live-metrics.md).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Serve a live view of the run (its charts filling in each second, the progress line,
    /// the SLO table so far) at http://127.0.0.1:PORT/ (a free port, printed), or at `/` of
    /// `--metrics-listen ADDR` when given; it stops with the run.
    #[arg(long)]
    pub live: bool,
    /// After the run, keep the metrics endpoint up this long, so a scraper gets the final
    /// totals (they equal result.json); Ctrl-C ends it early.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub metrics_linger: std::time::Duration,
}

/// What `saturate` and `capacity` share.
#[derive(Args, Debug, Clone)]
pub struct SearchOptions {
    pub scenario: PathBuf,
    /// Results folder [default: reports/<scenario>-<command>-<UTC timestamp>/].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override a scenario key by dotted path, e.g. `saturate.step=30s` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Seed for every random choice (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Generator threads [default: the machine's cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Only the answer and the results folder.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SaturateArgs {
    #[command(flatten)]
    pub search: SearchOptions,
    /// Send the load to this base URL (switches an embedded scenario to HTTP).
    #[arg(long, env = "CQRS_BENCH_TARGET")]
    pub target: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub search: SearchOptions,
    /// Projector counts to measure, e.g. `1,2,4,8` [default: `[capacity] projectors`, or 1,2,4].
    #[arg(long, value_name = "N,N,…", value_parser = parse_counts)]
    pub projectors: Option<ProjectorCounts>,
    /// Events/s to plan for: answers with the smallest projector count that sustains it.
    #[arg(long, value_name = "EVENTS_PER_S", value_parser = parse_rate)]
    pub target_rate: Option<f64>,
    /// Headroom the answer keeps above --target-rate, e.g. `20%` [default: `[capacity] headroom`, or 20%].
    #[arg(long, value_parser = parse_percent)]
    pub headroom: Option<f64>,
}

/// `--projectors 1,2,4`: one value holding a list (clap would take a `Vec` for repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectorCounts(pub Vec<usize>);

fn parse_counts(text: &str) -> Result<ProjectorCounts, String> {
    crate::scenario::parse_projector_counts(text).map(ProjectorCounts)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v <= 1e9 => Ok(v),
        _ => Err(format!("`{text}` is not an event rate: a positive number of events/s")),
    }
}

/// The environment variable a Kubernetes Indexed Job sets to each pod's index.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4, or auto/N")?;
    let index = if i.trim() == "auto" {
        std::env::var(JOB_COMPLETION_INDEX).map_err(|_| {
            format!("--shard auto/{n}: {JOB_COMPLETION_INDEX} is not set (it is in a Kubernetes Indexed Job)")
        })?
    } else {
        i.to_owned()
    };
    let i: u32 = index.trim().parse().map_err(|_| format!("`{index}` is not a shard index"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("`{n}` is not a shard count"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: I must be in 0..N"));
    }
    Ok((i, n))
}

fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time such as 2026-11-24T10:00:00Z ({e})"))
}

fn parse_run_id(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text.trim(), 16) {
        Ok(id) if text.trim().len() == 8 => Ok(id),
        _ => Err(format!("`{text}` is not a run id: 8 hex digits, e.g. 3fa9c2d1")),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{text}` is not a percentage, e.g. 10%")),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn served_schema(args: &[&str]) -> String {
        let cli = Cli::try_parse_from(["cqrs-bench", "target", "serve"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Target(TargetCommand::Serve(serve)) => serve.schema(),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// Issue 12: `serve --variant pg-sync` then `--variant outbox`, both with defaults, met
    /// on one schema and refused each other's migrations.
    #[test]
    fn each_variant_has_its_own_default_schema() {
        assert_eq!(served_schema(&["--variant", "pg-sync"]), "cqrs_bench_pg_sync");
        assert_eq!(served_schema(&["--variant", "outbox"]), "cqrs_bench_outbox");
        assert_eq!(served_schema(&["--variant", "event-sourced"]), "cqrs_bench_event_sourced");
        assert_eq!(served_schema(&["--variant", "outbox", "--schema", "mine"]), "mine");
    }

    /// Issue 10: `--projectors 1,2,4` is one value holding a list.
    #[test]
    fn capacity_takes_a_list_of_counts() {
        let cli = Cli::try_parse_from([
            "cqrs-bench",
            "capacity",
            "s.toml",
            "--projectors",
            "4,1,2",
            "--target-rate",
            "500",
            "--headroom",
            "30%",
        ])
        .unwrap();
        let Command::Capacity(args) = cli.command else { panic!("capacity") };
        assert_eq!(args.projectors, Some(ProjectorCounts(vec![1, 2, 4])));
        assert_eq!((args.target_rate, args.headroom), (Some(500.0), Some(30.0)));
        assert!(Cli::try_parse_from(["cqrs-bench", "capacity", "s.toml", "--target-rate", "-1"]).is_err());
        assert!(Cli::try_parse_from(["cqrs-bench", "capacity", "s.toml", "--projectors", "0"]).is_err());
    }
}
