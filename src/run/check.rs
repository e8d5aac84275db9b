//! `validate --target URL`: one answer of each probe and verify query read from the live
//! target and checked against the selector's shape, before any load is sent.

use std::sync::Arc;

use super::connect::preflight;
use crate::exit::Usage;
use crate::probe;
use crate::scenario::{self, Scenario};
use crate::target::HttpTarget;

/// `validate --target URL`: reads one answer of each probe and verify query (GETs only,
/// with the first key) and says where a selector does not fit its shape (issue 12).
/// With `write_one`, first sends one create, so queries on created keys are read with
/// the id it made (issue 31), said in `notes`.
pub async fn check_probe_answers(
    scenario: &Scenario,
    base_url: &str,
    write_one: bool,
) -> anyhow::Result<probe::shape::SampleChecks> {
    let http = Arc::new(HttpTarget::new(base_url, 4, scenario.target.max_body).map_err(Usage)?);
    preflight(base_url, &scenario::redact::redact_urls(base_url), scenario.target.timeout).await?;
    let written = match write_one {
        true => probe::write_one::write_one(scenario, http.clone()).await?,
        false => None,
    };
    let created = match (&written, write_one) {
        (Some(one), _) => Some(one.id.clone()),
        (None, true) => Some(Err("--write-one found no operation with `creates_key` to send".to_owned())),
        (None, false) => None,
    };
    let mut checks = probe::shape::check_sample_answers(scenario, http.as_ref(), created.as_ref()).await;
    if let Some(one) = written {
        checks.notes.push(format!("--write-one: {}", one.note));
    }
    Ok(checks)
}
