//! Issue 32, items 2, 6 and 7, with the real binary: forged histograms and FIFOs are
//! located errors (exit 2), `merge` streams the shards' seconds in bounded memory, an
//! interrupted `--repeat` and an output that could not be written end in exit 3.
//! (The metrics endpoint's bounds are tested in `src/live/serve.rs`.)

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, bench, result_json, root};

/// A small embedded run: one command and one query on 10 accounts, 2 s at 50/s, no probes.
const SMALL: &str = r#"# Issue 32 tests: a short run with a known set of output files.
name = "small"
seed = 7

[target]
kind = "embedded"
variant = "memory"
timeout = "2s"

[load]
model = "open"
stages = [{ duration = "2s", rate = 50 }]

[mix]
keys = { count = 10, prefix = "acct-" }

[[setup]]
method = "POST"
path = "/accounts/{{key}}/open"
body = '{"owner": "t"}'
expect_status = [201, 409]
rate = 1000

[[command]]
name = "deposit"
weight = 1
path = "/accounts/{{key}}/deposit"
body = '{"amount": {{int 1 100}}, "ref": "{{ref}}"}'
expect_status = [200]

[[query]]
name = "get_account"
weight = 1
path = "/accounts/{{key}}"
expect_status = [200, 404]
"#;

fn small_scenario(dir: &Path) -> PathBuf {
    let path = dir.join("small.toml");
    std::fs::write(&path, SMALL).unwrap();
    path
}

/// One real shard 0 of `count`, into `dir/shard-0`.
fn shard_run(dir: &Path, count: u32) -> PathBuf {
    let out = dir.join("shard-0");
    let output = bench()
        .arg("run")
        .arg(small_scenario(dir))
        .args(["--quiet", "--shard", &format!("0/{count}"), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    out
}

/// Copies shard 0 as shard `index` (the same run, another index: merge adds it once more).
fn copy_shard(from: &Path, to: &Path, index: u32) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    let mut result = result_json(to);
    result["shard"]["index"] = index.into();
    std::fs::write(to.join("result.json"), serde_json::to_vec_pretty(&result).unwrap()).unwrap();
}

/// A 52-character histogram whose V2 header (inside the deflated form) claims a
/// 4,294,967,295-byte payload: what made `merge` and `compare` abort allocating 4 GiB.
const FORGED: &str = "HISTFAAAAB94nJNpmSz8HwgYIIAZSjOCiGuTlzDYf4AIAADaUAiD";

/// `cmd`'s exit code and stderr, within 60 s (a FIFO used to hang it for ever).
fn code_and_stderr(cmd: &mut assert_cmd::Command) -> (Option<i32>, String) {
    let output = cmd.timeout(Duration::from_secs(60)).output().unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn issue32_a_forged_histogram_is_a_located_error() {
    let tmp = tempfile::tempdir().unwrap();
    let shard0 = shard_run(tmp.path(), 2);
    let shard1 = tmp.path().join("shard-1");
    copy_shard(&shard0, &shard1, 1);

    // In an interval log: a 70-character line after the real ones.
    let log = shard1.join("deposit.hlog");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    let forged_line = format!("9.000,1.000,0.000,{FORGED}\n");
    assert!(forged_line.len() <= 72, "{}", forged_line.len());
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(forged_line.as_bytes()).unwrap();
    let located = format!("deposit.hlog:{}: second 9: the histogram claims a payload of 4294967295 bytes", lines + 1);
    for cmd in [
        bench().arg("merge").arg(&shard0).arg(&shard1).arg("--out").arg(tmp.path().join("merged")),
        bench().arg("compare").arg(&shard0).arg(&shard1).arg("--out").arg(tmp.path().join("compared")),
    ] {
        let (code, stderr) = code_and_stderr(cmd);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&located), "{stderr}");
        assert!(!stderr.contains("memory allocation"), "{stderr}");
    }

    // In result.json: the field is named.
    std::fs::copy(shard0.join("deposit.hlog"), &log).unwrap();
    let mut result = result_json(&shard1);
    result["operations"]["get_account"]["histogram"] = FORGED.into();
    std::fs::write(shard1.join("result.json"), serde_json::to_vec_pretty(&result).unwrap()).unwrap();
    let located = "result.json: `operations.get_account.histogram`: the histogram claims a payload of 4294967295 bytes";
    for cmd in [
        bench().arg("merge").arg(&shard0).arg(&shard1).arg("--out").arg(tmp.path().join("merged")),
        bench().arg("compare").arg(&shard0).arg(&shard1).arg("--out").arg(tmp.path().join("compared")),
        bench().arg("report").arg(&shard1),
    ] {
        let (code, stderr) = code_and_stderr(cmd);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(located), "{stderr}");
    }
}

#[test]
fn issue32_a_fifo_in_place_of_result_json_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let shard0 = shard_run(tmp.path(), 2);
    let fifo_dir = tmp.path().join("shard-1");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    assert!(Command::new("mkfifo").arg(fifo_dir.join("result.json")).status().unwrap().success());
    for cmd in [
        bench().arg("merge").arg(&shard0).arg(&fifo_dir).arg("--out").arg(tmp.path().join("merged")),
        bench().arg("report").arg(&fifo_dir),
        bench().arg("compare").arg(&shard0).arg(&fifo_dir).arg("--out").arg(tmp.path().join("compared")),
    ] {
        let (code, stderr) = code_and_stderr(cmd);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("result.json: is a FIFO (named pipe), not a regular file"), "{stderr}");
    }
    // An interval log that is a FIFO, too.
    let shard1 = tmp.path().join("shard-1b");
    copy_shard(&shard0, &shard1, 1);
    std::fs::remove_file(shard1.join("get_account.hlog")).unwrap();
    assert!(Command::new("mkfifo").arg(shard1.join("get_account.hlog")).status().unwrap().success());
    let (code, stderr) =
        code_and_stderr(bench().arg("merge").arg(&shard0).arg(&shard1).arg("--out").arg(tmp.path().join("m2")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("get_account.hlog: is a FIFO (named pipe)"), "{stderr}");
}

/// Peak resident memory (VmHWM) of process `pid`, in KiB; `None` once it has exited.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Extends every interval log of `dir` to `seconds` one-second intervals, repeating its
/// last interval's histogram (one real second of the run), so the shard looks like a run
/// of that length to `merge`.
fn extend_logs(dir: &Path, seconds: u64) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hlog") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(last) = text.lines().rev().find(|l| !l.starts_with('#') && !l.starts_with('"')) else { continue };
        let fields: Vec<&str> = last.splitn(4, ',').collect();
        let from = fields[0].parse::<f64>().unwrap() as u64 + 1;
        let mut file = std::io::BufWriter::new(std::fs::OpenOptions::new().append(true).open(&path).unwrap());
        for second in from..seconds {
            writeln!(file, "{second}.000,1.000,{},{}", fields[2], fields[3]).unwrap();
        }
    }
}

/// Issue 32: `merge` held every second of every shard (a decoded histogram of 188 KB per
/// timeline row: 1.8 GB at 10,000 seconds). 4 shards of 4,000 one-second rows each
/// (750 MB before) merge in bounded memory, and every merged second is the shards' sum.
#[test]
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread watching a child process
fn issue32_merge_streams_the_seconds_in_bounded_memory() {
    let _timing = crate::support::timing_sensitive();
    const SECONDS: u64 = 4_000;
    const SHARDS: u32 = 4;
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc to read merge's memory from");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let shard0 = shard_run(tmp.path(), SHARDS);
    extend_logs(&shard0, SECONDS);
    let mut dirs = vec![shard0.clone()];
    for index in 1..SHARDS {
        let dir = tmp.path().join(format!("shard-{index}"));
        copy_shard(&shard0, &dir, index);
        dirs.push(dir);
    }
    let merged = tmp.path().join("merged");
    let mut child = Command::new(BIN)
        .current_dir(root())
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(&merged)
        .arg("--quiet")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak_kib = 0;
    let began = Instant::now();
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(began.elapsed() < Duration::from_secs(600), "merge still running after 600 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    eprintln!("merge of {SHARDS} shards × {SECONDS} s: peak RSS {} MiB", peak_kib / 1024);
    // Before: 4,000 rows × 188 KB = 750 MB for each operation's rows alone.
    assert!(peak_kib < 128 * 1024, "merge peaked at {} MiB", peak_kib / 1024);

    // Structure: every second once, each the sum of the shards' (the same second 4 times).
    let counts = |path: &Path| -> Vec<(u64, u64)> {
        BufReader::new(std::fs::File::open(path).unwrap())
            .lines()
            .map(Result::unwrap)
            .filter(|l| !l.starts_with('#') && !l.starts_with('"'))
            .map(|l| {
                let fields: Vec<&str> = l.splitn(4, ',').collect();
                let h = cqrs_bench::results::histogram::decode(fields[3]).unwrap();
                (fields[0].parse::<f64>().unwrap() as u64, h.len())
            })
            .collect()
    };
    let shard = counts(&shard0.join("deposit.hlog"));
    // The merged log rotates at 3,600 s, as a run's does.
    let mut merged_counts = counts(&merged.join("deposit.hlog"));
    merged_counts.extend(counts(&merged.join("deposit.1.hlog")));
    assert_eq!(shard.len() as u64, SECONDS, "the shard's log was extended");
    assert_eq!(merged_counts.len(), shard.len());
    for ((second, n), (merged_second, merged_n)) in shard.iter().zip(&merged_counts) {
        assert_eq!((merged_second, *merged_n), (second, n * u64::from(SHARDS)));
    }
    let result = result_json(&merged);
    let rows = result["timeline"].as_array().unwrap();
    assert_eq!(rows.len() as u64, SECONDS, "one row a second");
    let last = &rows[SECONDS as usize - 1]["latency_ms"]["deposit"]["count"];
    assert_eq!(last.as_u64().unwrap(), shard.last().unwrap().1 * u64::from(SHARDS));
}

/// Issue 32: `run --repeat 3` stopped by SIGTERM after its first run used to exit 0 with
/// "wrote 1 runs": now exit 3, repeat.md says `interrupted: true`, the finished run is kept
/// and no further run starts.
#[test]
fn issue32_a_signal_during_a_repeat_is_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repeat");
    let mut child = Command::new(BIN)
        .current_dir(root())
        .arg("run")
        .arg(small_scenario(tmp.path()))
        .args(["--repeat", "3", "--quiet", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    // The first run is over when its verdict line is out: signal the process then, as
    // the next run begins.
    while !seen.contains("run 1/3:") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no `run 1/3` line: {seen}");
        seen.push_str(&line);
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let rest = std::io::read_to_string(stdout).unwrap();
    let status = child.wait().unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(3), "{seen}{rest}{stderr}");
    assert!(rest.contains("interrupted: true"), "{rest}");
    let repeat_md = std::fs::read_to_string(out.join("repeat.md")).unwrap();
    assert!(repeat_md.starts_with("interrupted: true"), "{repeat_md}");
    assert!(repeat_md.contains("1 of 3 runs finished"), "{repeat_md}");
    assert_eq!(result_json(&out.join("run-1"))["interrupted"], false, "the finished run is kept as it was");
    assert!(!out.join("run-3").exists(), "no run starts after the signal");
}

/// Issue 32: an output that cannot be written fails `report` (exit 3) and names it, after
/// writing the others: folders in the way of report.html and junit.xml.
#[test]
fn issue32_report_fails_when_an_output_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output =
        bench().arg("run").arg(small_scenario(tmp.path())).args(["--quiet", "--out"]).arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let result_before = std::fs::read(out.join("result.json")).unwrap();
    for name in ["report.html", "junit.xml"] {
        std::fs::remove_file(out.join(name)).unwrap();
        std::fs::create_dir_all(out.join(name).join("in-the-way")).unwrap();
    }
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    let (code, stderr) = code_and_stderr(bench().arg("report").arg(&out));
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("2 output file(s) could not be written (what was measured is in result.json)"), "{stderr}");
    assert!(stderr.contains("report.html: renaming") && stderr.contains("junit.xml: renaming"), "{stderr}");
    assert!(out.join("plots").read_dir().unwrap().count() > 0, "the plots were still drawn");
    assert_eq!(std::fs::read(out.join("result.json")).unwrap(), result_before);
}

/// Runs `script` (sh) in a private mount namespace, where it may mount a small tmpfs;
/// `None` when this machine does not allow one (then the caller skips).
fn in_mount_namespace(script: &str) -> Option<std::process::Output> {
    for prefix in [&["--mount"][..], &["--user", "--map-root-user", "--mount"][..]] {
        let probe = Command::new("unshare").args(prefix).args(["sh", "-c", "mount -t tmpfs none /mnt"]).output();
        if probe.is_ok_and(|o| o.status.success()) {
            return Some(Command::new("unshare").args(prefix).args(["sh", "-c", script]).output().unwrap());
        }
    }
    None
}

/// Issue 32: a full disk made `run` exit 0 without report.html and junit.xml. On a tmpfs
/// with room for the run's folder, its interval logs and result.json, and no more (a
/// real "No space left on device"): result.json is kept, the rest is named, exit 3.
#[test]
fn issue32_a_full_disk_fails_the_run_and_keeps_result_json() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = small_scenario(tmp.path());
    let copy = tmp.path().join("copy");
    let mount = tmp.path().join("mnt");
    std::fs::create_dir_all(&mount).unwrap();
    // Inodes: the tmpfs root, the run folder, deposit.hlog, get_account.hlog, result.json.
    let script = format!(
        "mount -t tmpfs -o size=16m,nr_inodes=5 none '{mnt}' && \
         '{bin}' run '{scenario}' --quiet --out '{mnt}/out'; code=$?; cp -r '{mnt}/out' '{copy}'; exit $code",
        mnt = mount.display(),
        bin = BIN,
        scenario = scenario.display(),
        copy = copy.display()
    );
    let Some(output) = in_mount_namespace(&script) else {
        eprintln!("skipped: no mount namespace here to mount a small tmpfs in (unshare)");
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("could not be written (what was measured is in result.json)"), "{stderr}");
    for name in ["report.html", "junit.xml", "plots"] {
        assert!(stderr.contains(name), "{name} named: {stderr}");
        assert!(!copy.join(name).exists(), "{name}");
    }
    let result = result_json(&copy);
    assert!(result["operations"]["deposit"]["count"].as_u64().unwrap() > 0, "the measurements are kept");
}
