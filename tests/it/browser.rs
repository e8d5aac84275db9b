//! report.html in a real browser (issue 35): headless Chromium, started once, opens the
//! report of a real short run, a report whose operation name tries to end the script, and
//! a 3,600-row (24-hour-shaped) report; each must draw its charts with no console error
//! and no request, and answer a hover with the measured value. Then the live view of a
//! running run (`run --live`): its charts gain rows as seconds pass, and its server is
//! gone when the run ends.

use std::path::Path;

use serde_json::Value;

use crate::cdp::{Browser, Page};
use crate::support::{bench, result_json};

/// The open time a page of a 24-hour run must stay under.
const OPEN_LIMIT_MS: f64 = 2000.0;
/// The viewport of the pages (and of the screenshot in docs/).
const VIEWPORT: (u32, u32) = (1200, 900);

fn quickstart(dir: &Path) {
    bench()
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--duration", "5s", "--out"])
        .arg(dir)
        .assert()
        // 1 when an SLO failed on a busy machine: the report is written all the same.
        .code(predicates::ord::le(1));
}

/// Rewrites result.json of `dir` with `edit` and redraws its views (`cqrs-bench report`).
fn rewrite(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut result = result_json(dir);
    edit(&mut result);
    std::fs::write(dir.join("result.json"), serde_json::to_vec(&result).unwrap()).unwrap();
    bench().arg("report").arg(dir).assert().success();
}

fn copy_run(from: &Path, to: &Path) {
    std::fs::copy(from.join("result.json"), to.join("result.json")).unwrap();
}

/// Renames operation `from` to `to` everywhere result.json names it.
fn rename_operation(result: &mut Value, from: &str, to: &str) {
    let ops = result["operations"].as_object_mut().unwrap();
    let op = ops.remove(from).unwrap();
    ops.insert(to.to_owned(), op);
    for row in result["timeline"].as_array_mut().unwrap() {
        if let Some(l) = row["latency_ms"].as_object_mut().and_then(|m| m.remove(from)) {
            row["latency_ms"][to] = l;
        }
    }
}

/// Stretches the timeline to `rows` rows (the cap of a 24-hour run) by repeating the
/// measured ones, and adds copies of every operation: the shape of a long run's page.
fn stretch(result: &mut Value, rows: usize, extra_ops: usize) {
    let names: Vec<String> = result["operations"].as_object().unwrap().keys().cloned().collect();
    for i in 0..extra_ops {
        for name in &names {
            let op = result["operations"][name].clone();
            result["operations"][format!("{name}_{i}")] = op;
        }
    }
    let measured: Vec<Value> = result["timeline"].as_array().unwrap().clone();
    let mut timeline = Vec::with_capacity(rows);
    for t in 0..rows {
        let mut row = measured[t % measured.len()].clone();
        row["t_s"] = t.into();
        let latencies = row["latency_ms"].clone();
        for i in 0..extra_ops {
            for (name, l) in latencies.as_object().unwrap() {
                row["latency_ms"][format!("{name}_{i}")] = l.clone();
            }
        }
        timeline.push(row);
    }
    result["timeline"] = Value::Array(timeline);
}

/// The charts' names and legend entries, once the page's script has run.
fn legend(browser: &mut Browser, page: &Page, chart: &str) -> Vec<(String, String)> {
    let rows = browser.eval(
        page,
        &format!(
            "[...document.querySelectorAll('#chart-{chart} .u-legend .u-series')].map(tr => \
             [tr.querySelector('.u-label').textContent, tr.querySelector('.u-value').textContent])"
        ),
    );
    serde_json::from_value(rows).unwrap()
}

/// Milliseconds from the navigation's start to the end of the load event: the page
/// parsed, its scripts run, every chart drawn (the charts are drawn before `load`).
fn open_ms(browser: &mut Browser, page: &Page) -> f64 {
    browser.eval(page, "performance.getEntriesByType('navigation')[0].loadEventEnd").as_f64().unwrap()
}

/// Opens the report of `dir`, checks it drew `charts` charts without a problem, and
/// returns its weight in KB and its open time.
fn weigh(browser: &mut Browser, dir: &Path, charts: u64) -> (u64, f64, f64) {
    let page = browser.open(&format!("file://{}", dir.join("report.html").display()), VIEWPORT);
    let opened = open_ms(browser, &page);
    let build_ms = browser.eval(&page, "window.cqrsBenchCharts.buildMs").as_f64().unwrap();
    assert_eq!(browser.eval(&page, "window.cqrsBenchCharts.count").as_u64().unwrap(), charts);
    assert!(browser.problems(&page).is_empty(), "{:#?}", browser.problems(&page));
    browser.close(page);
    (std::fs::metadata(dir.join("report.html")).unwrap().len() / 1024, opened, build_ms)
}

#[test]
fn report_html_draws_its_charts_in_a_real_browser() {
    let Some(mut browser) = Browser::start() else {
        eprintln!(
            "SKIPPED report_html_draws_its_charts_in_a_real_browser: chromium is not installed (.ci/run installs it)"
        );
        return;
    };
    let run = tempfile::tempdir().unwrap();
    quickstart(run.path());
    let result = result_json(run.path());
    let url = |dir: &Path| format!("file://{}", dir.join("report.html").display());

    // 1. The report of a real run: every figure drawn, nothing fetched, nothing failed.
    let page = browser.open(&url(run.path()), VIEWPORT);
    let drawn = browser.eval(&page, "window.cqrsBenchCharts.count").as_u64().unwrap();
    let boxes = browser.eval(&page, "document.querySelectorAll('.chart-box').length").as_u64().unwrap();
    let canvases =
        browser.eval(&page, "document.querySelectorAll('.chart-box .uplot canvas').length").as_u64().unwrap();
    assert!(
        drawn >= 4 && drawn == boxes && canvases == boxes,
        "{drawn} charts drawn, {boxes} boxes, {canvases} canvases"
    );
    let names: Vec<String> = legend(&mut browser, &page, "latency-over-time").into_iter().map(|(n, _)| n).collect();
    for op in ["deposit", "withdraw", "get_account", "top_accounts"] {
        assert!(names.contains(&format!("{op} p99")) && names.contains(&format!("{op} p50")), "{op} in {names:?}");
    }
    let names: Vec<String> = legend(&mut browser, &page, "throughput").into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"offered".to_owned()) && names.contains(&"achieved".to_owned()), "{names:?}");
    // The SLO thresholds ride with the latency charts.
    let slo_lines = browser.eval(
        &page,
        "JSON.parse(document.getElementById('charts-data').textContent).charts\
         .find(c => c.id == 'latency-over-time').thresholds.map(t => t.label)",
    );
    assert!(slo_lines.to_string().contains("command_latency_p95"), "{slo_lines}");
    // The spectrum has log axes on both sides, as HdrHistogram's plotter.
    let distr = browser.eval(
        &page,
        "(u => [u.scales.x.distr, u.scales.y.distr])(window.cqrsBenchCharts.charts.find(u => u.root.parentNode.id == 'chart-latency-spectrum'))",
    );
    assert_eq!(distr, serde_json::json!([3, 3]), "log x and log y");

    // 2. Hovering a point of the latency chart shows the second and the value result.json
    // holds; the throughput chart's cursor follows to the same second.
    let r = browser.rect(&page, "#chart-latency-over-time .u-over");
    browser.hover(&page, r[0] + r[2] * 0.5, r[1] + r[3] * 0.5);
    let hovered = legend(&mut browser, &page, "latency-over-time");
    let second: f64 = hovered[0].1.strip_prefix("second ").unwrap_or_else(|| panic!("{hovered:?}")).parse().unwrap();
    let row = result["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| (row["t_s"].as_f64().unwrap() + 0.5 - second).abs() < 1e-9)
        .unwrap_or_else(|| panic!("a timeline row at second {second}"));
    let shown: f64 = hovered.iter().find(|(n, _)| n == "deposit p99").unwrap().1.parse().unwrap();
    let measured = row["latency_ms"]["deposit"]["p99"].as_f64().unwrap();
    assert!((shown - measured).abs() <= measured * 1e-5, "hover shows {shown}, result.json has {measured}");
    let followed = legend(&mut browser, &page, "throughput");
    assert_eq!(followed[0].1, hovered[0].1, "the cursor is shared by the time charts");

    // 3. Zoom acts on every time chart at once; a legend click hides a line.
    let ranges = "window.cqrsBenchCharts.charts.filter(u => u.cqrsTime).map(u => [u.scales.x.min, u.scales.x.max])";
    let before: Vec<(f64, f64)> = serde_json::from_value(browser.eval(&page, ranges)).unwrap();
    browser.eval(&page, "document.querySelector('[data-zoom=in]').click()");
    let after: Vec<(f64, f64)> = serde_json::from_value(browser.eval(&page, ranges)).unwrap();
    assert!(after.len() >= 3 && after.iter().all(|r| *r == after[0]), "one zoom for all: {after:?}");
    assert!(after[0].1 - after[0].0 < (before[0].1 - before[0].0) * 0.75, "zoomed in: {before:?} → {after:?}");
    let chart = "window.cqrsBenchCharts.charts.find(u => u.root.parentNode.id == 'chart-latency-over-time')";
    let i = browser.eval(&page, &format!("{chart}.series.findIndex(s => s.label == 'deposit p50')")).as_u64().unwrap();
    // The mouse leaves the charts first: a live legend changes width as the cursor moves.
    browser.hover(&page, 0.0, 0.0);
    let r = browser.rect(&page, &format!("#chart-latency-over-time .u-legend .u-series:nth-child({}) .u-label", i + 1));
    browser.click(&page, r[0] + r[2] / 2.0, r[1] + r[3] / 2.0);
    let hidden = browser.eval(&page, &format!("{chart}.series[{i}].show"));
    assert_eq!(hidden, Value::Bool(false), "a legend click hides the series");
    browser.eval(&page, "document.querySelector('[data-zoom=all]').click()");
    let opened = open_ms(&mut browser, &page);
    assert!(browser.problems(&page).is_empty(), "{:#?}", browser.problems(&page));
    eprintln!(
        "report.html of a 5 s run: {} KB, opened in {opened:.0} ms",
        std::fs::metadata(run.path().join("report.html")).unwrap().len() / 1024
    );
    if let Some(docs) = std::env::var_os("CQRS_BENCH_SCREENSHOTS") {
        // CQRS_BENCH_SCREENSHOTS=docs: the picture for the README, hovered mid-run.
        browser.eval(&page, "document.getElementById('chart-latency-spectrum').parentNode.scrollIntoView()");
        browser.eval(&page, "window.scrollBy(0, -70)");
        let over = browser.eval(
            &page,
            "(() => { const r = document.querySelector('#chart-latency-over-time .u-over').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()",
        );
        let r: Vec<f64> = serde_json::from_value(over).unwrap();
        browser.hover(&page, r[0] + r[2] * 0.6, r[1] + r[3] * 0.5);
        std::fs::write(Path::new(&docs).join("report-interactive.png"), browser.screenshot(&page)).unwrap();
    }
    browser.close(page);

    // 4. An operation named to end the script element stays text.
    let hostile = tempfile::tempdir().unwrap();
    copy_run(run.path(), hostile.path());
    let name = "</script><script>window.pwned=1</script><!--";
    rewrite(hostile.path(), |r| rename_operation(r, "deposit", name));
    let page = browser.open(&url(hostile.path()), VIEWPORT);
    assert_eq!(browser.eval(&page, "typeof window.pwned"), "undefined");
    assert_eq!(browser.eval(&page, "window.cqrsBenchCharts.count").as_u64().unwrap(), drawn);
    let names: Vec<String> = legend(&mut browser, &page, "latency-over-time").into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&format!("{name} p99")), "the name as text: {names:?}");
    assert!(browser.problems(&page).is_empty(), "{:#?}", browser.problems(&page));
    browser.close(page);

    // 5. Pages of a 1-minute and of a 24-hour run (the timeline capped at 3,600 rows),
    // with twice the operations: the long one opens in under 2 s.
    for (rows, what) in [(60, "1-minute"), (3600, "24-hour (3,600 rows)")] {
        let long = tempfile::tempdir().unwrap();
        copy_run(run.path(), long.path());
        rewrite(long.path(), |r| stretch(r, rows, 1));
        let (kb, opened, build_ms) = weigh(&mut browser, long.path(), drawn);
        eprintln!(
            "report.html of a {what} run, 10 operations: {kb} KB, opened in {opened:.0} ms (charts built in {build_ms:.0} ms)"
        );
        assert!(opened < OPEN_LIMIT_MS, "{what}: opened in {opened:.0} ms");
    }

    // 6. compare.html of the run against itself as the baseline: the runs' tables, the
    // bootstrap verdicts and the overlaid charts, drawn with no problem.
    let cmp = tempfile::tempdir().unwrap();
    bench()
        .arg("compare")
        .arg(run.path())
        .arg(hostile.path())
        .arg("--baseline")
        .arg(run.path())
        .arg("--out")
        .arg(cmp.path())
        .assert()
        .success();
    let page = browser.open(&url_of(&cmp.path().join("compare.html")), VIEWPORT);
    let charts = browser.eval(&page, "window.cqrsBenchCharts.count").as_u64().unwrap();
    let boxes = browser.eval(&page, "document.querySelectorAll('.chart-box .uplot canvas').length").as_u64().unwrap();
    assert!(charts >= 4 && charts == boxes, "{charts} charts, {boxes} drawn");
    let names: Vec<String> = legend(&mut browser, &page, "throughput").into_iter().map(|(n, _)| n).collect();
    let label = |dir: &Path| dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(names.contains(&format!("{} (baseline)", label(run.path()))), "{names:?}");
    assert!(names.contains(&label(hostile.path())), "{names:?}");
    let tables = browser.eval(
        &page,
        "[document.querySelectorAll('table.judged').length, document.querySelectorAll('table.slo').length, \
          document.querySelector('table.judged').textContent.includes('95 % interval')]",
    );
    assert_eq!(tables, serde_json::json!([2, 3, true]), "verdicts of 2 runs, SLO tables of 3");
    assert!(browser.problems(&page).is_empty(), "{:#?}", browser.problems(&page));
    if let Some(docs) = std::env::var_os("CQRS_BENCH_SCREENSHOTS") {
        browser.eval(&page, "document.querySelector('h2 + .zoom').scrollIntoView()");
        std::fs::write(Path::new(&docs).join("compare-interactive.png"), browser.screenshot(&page)).unwrap();
    }
    browser.close(page);

    // 7. The live view of a running run, in the same browser.
    live_view(&mut browser);
}

/// The rows the live page's throughput chart holds now (its `achieved` points).
fn live_rows(browser: &mut Browser, page: &Page) -> u64 {
    browser
        .eval(
            page,
            "window.cqrsBenchCharts.charts.find(u => u.cqrsSpec.id == 'throughput')\
             .cqrsSpec.series.find(s => s.name == 'achieved').x.length",
        )
        .as_u64()
        .unwrap()
}

/// `run --live` of quickstart: the page opened mid-run draws report.html's time charts
/// and fills them in as seconds close, with the progress line and the SLO table, nothing
/// failed and nothing fetched but its own `/live.json`; after the run its server is gone.
#[allow(clippy::disallowed_methods)] // std::thread::sleep: a plain test thread watching a child process
fn live_view(browser: &mut Browser) {
    use std::io::BufRead as _;
    let out = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .current_dir(crate::support::root())
        .args(["run", "scenarios/quickstart.toml", "--quiet", "--live", "--duration", "10s", "--out"])
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("live view: ") {
                let _ = tx.send(url.to_owned());
            }
            eprintln!("{line}");
        }
    });
    let url = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the run prints the live view's address");
    assert!(url.starts_with("http://127.0.0.1:"), "loopback by default: {url}");
    let page = browser.open(&url, VIEWPORT);
    let polls = format!("{url}live.json");
    // The page as served: report.html's time charts, drawn by the same script.
    let ids = browser.eval(&page, "window.cqrsBenchCharts.charts.map(u => u.cqrsSpec.id)");
    assert_eq!(ids, serde_json::json!(["latency-over-time", "throughput"]));
    // Mid-run: wait for the first closed seconds, then read the rows twice, 2.5 s apart.
    let began = std::time::Instant::now();
    while live_rows(browser, &page) < 2 {
        assert!(began.elapsed() < std::time::Duration::from_secs(30), "no row after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let first = live_rows(browser, &page);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let second = live_rows(browser, &page);
    assert!(second > first, "the charts gained rows: {first} → {second}");
    let drawn =
        browser.eval(&page, "window.cqrsBenchCharts.charts.find(u => u.cqrsSpec.id == 'throughput').data[0].length");
    assert!(drawn.as_u64().unwrap() > second, "the drawn chart holds the rows (and the run's end on its axis)");
    let names: Vec<String> = legend(browser, &page, "latency-over-time").into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"deposit p99".to_owned()), "{names:?}");
    let progress = browser.eval(&page, "document.getElementById('live-progress').textContent");
    let progress = progress.as_str().unwrap();
    assert!(progress.contains("achieved") || progress.starts_with("[draining]"), "the progress line: {progress}");
    let slo =
        browser.eval(&page, "[...document.querySelectorAll('#live-slo tbody tr')].map(tr => tr.cells[0].textContent)");
    assert!(slo.to_string().contains("command_latency_p95"), "the SLO table so far: {slo}");
    assert!(browser.eval(&page, "window.cqrsBenchLive.polls").as_u64().unwrap() >= 2, "polled each second");
    let problems = browser.problems_besides(&page, &[&polls]);
    assert!(problems.is_empty(), "{problems:#?}");
    eprintln!("live view: {first} → {second} rows in 2.5 s, progress `{progress}`");
    if let Some(docs) = std::env::var_os("CQRS_BENCH_SCREENSHOTS") {
        std::fs::write(Path::new(&docs).join("live-view.png"), browser.screenshot(&page)).unwrap();
    }
    // The run ends by itself; its server with it, and the page says so.
    let status = child.wait().unwrap();
    assert!(status.code().is_some_and(|c| c <= 1), "{status}");
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    assert!(std::net::TcpStream::connect(addr).is_err(), "the live view's server stopped with the run");
    let began = std::time::Instant::now();
    while browser.eval(&page, "window.cqrsBenchLive.ended") != Value::Bool(true) {
        assert!(began.elapsed() < std::time::Duration::from_secs(5), "the page did not notice the end");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    browser.close(page);
}

fn url_of(file: &Path) -> String {
    format!("file://{}", file.display())
}
