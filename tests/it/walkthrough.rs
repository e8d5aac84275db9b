//! The guide's walkthrough (docs/src/walkthrough.md, issue 34) is known to work: its steps
//! are run against the stock app it describes (tests/it/apps/stock.rs, shaped like a
//! third-party service), and its final scenario, read from the page itself, passes as a
//! gate against an app that loses nothing and fails against one that loses updates.

use crate::apps::stock;
use crate::support::{bench, result_json, root};

/// The block of docs/src/walkthrough.md after the `<!-- walkthrough: final scenario -->`
/// marker.
fn final_scenario() -> String {
    let page = std::fs::read_to_string(root().join("docs/src/walkthrough.md")).unwrap();
    let (_, after) =
        page.split_once("<!-- walkthrough: final scenario -->").expect("the page marks its final scenario");
    let (_, block) = after.split_once("```toml\n").expect("a ```toml block follows the marker");
    let (scenario, _) = block.split_once("\n```").expect("the block ends");
    format!("{scenario}\n")
}

fn restock(url: &str, sku: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/items/{sku}/restock"))
            .header("content-type", "application/json")
            .body(r#"{"quantity": 5}"#)
            .send()
            .await
            .unwrap();
        // The app's projector runs every 10 ms.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    });
}

#[test]
fn issue34_the_walkthrough_goes_from_init_to_a_passing_gate() {
    let dir = tempfile::tempdir().unwrap();
    // Step 1: `cqrs-bench init stock` writes a starter that validates as it is.
    bench().current_dir(dir.path()).args(["init", "stock"]).assert().success();
    bench().current_dir(dir.path()).args(["validate", "stock.toml"]).assert().success();

    // The final scenario of the page.
    let scenario = dir.path().join("stock.toml");
    std::fs::write(&scenario, final_scenario()).unwrap();

    // `validate --target`: every selector fits the answers of a copy with data (sku-0
    // restocked by hand). The gate then runs against a fresh one: the deltas count from 0.
    let staging = stock::start(usize::MAX);
    restock(&staging.url, "sku-0");
    let validated = bench().args(["validate", "--target", &staging.url]).arg(&scenario).assert().success();
    let stdout = String::from_utf8_lossy(&validated.get_output().stdout).to_string();
    let stderr = String::from_utf8_lossy(&validated.get_output().stderr).to_string();
    println!("{stdout}{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(stdout.contains("checked [projection] until") && stdout.contains("checked [verify] value"), "{stdout}");

    // The gate passes against the app that loses nothing, with figures equal to its truth.
    let app = stock::start(usize::MAX);
    let out = dir.path().join("pass");
    bench().args(["run", "--quiet", "--target", &app.url, "--out"]).arg(&out).arg(&scenario).assert().code(0);
    let (result, truth) = (result_json(&out), app.truth());
    println!("values {}\nprojection {}\ntruth {truth}", result["values"], result["projection"]);
    assert_eq!(truth["projected"], true);
    assert_eq!(truth["wrong_keys"], 0);
    assert_eq!(result["values"]["mismatched"], 0);
    assert_eq!(result["values"]["absent"], 0);
    assert!(result["values"]["keys_checked"].as_u64().unwrap() > 0);
    assert!(result["projection"]["probes"].as_u64().unwrap() >= 10, "{}", result["projection"]);
    assert_eq!(result["projection"]["late"], 0);

    // And fails against one whose projector loses every 7th update: the gate catches it.
    let lossy = stock::start(7);
    let out = dir.path().join("fail");
    bench().args(["run", "--quiet", "--target", &lossy.url, "--out"]).arg(&out).arg(&scenario).assert().code(1);
    let (result, truth) = (result_json(&out), lossy.truth());
    assert!(truth["lost"].as_u64().unwrap() > 0);
    assert_eq!(result["values"]["mismatched"], truth["wrong_keys"], "{}", result["values"]);
    let failed: Vec<_> =
        result["slo"].as_array().unwrap().iter().filter(|r| r["pass"] == false).map(|r| r["name"].clone()).collect();
    assert!(failed.contains(&serde_json::json!("value_mismatches")), "{failed:?}");
}
