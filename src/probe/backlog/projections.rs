//! A source's samples split by projection: a `sql` source with `checkpoints` reads
//! several projections per sample, and each becomes a source of its own in `backlog[]`
//! (`<name>/<projection>`). A projection is unknown for every sample that does not name
//! it — before it first appears, after it disappears — never 0: the harness cannot tell
//! how far behind a projection is that the checkpoint table does not list.

use super::figures::Sample;
use super::sources::Reading;

/// One sample of a source: every projection's reading, or why the read failed.
pub struct Tick {
    pub t_s: f64,
    pub read: Result<Vec<(Option<String>, Reading)>, String>,
}

/// Each projection (`None`: the source's single reading), those read before the load
/// (`seed`) first, then in the order they appeared, with a sample per tick and why its
/// first unknown sample was unknown.
pub fn split(seed: &[Option<String>], ticks: &[Tick]) -> Vec<(Option<String>, Vec<Sample>, Option<String>)> {
    let mut names: Vec<Option<String>> = seed.to_vec();
    for tick in ticks {
        for (name, _) in tick.read.iter().flatten() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let mut first_error = None;
            let samples = ticks
                .iter()
                .map(|tick| {
                    let reading = match &tick.read {
                        Ok(readings) => {
                            let found = readings.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
                            if found.is_none() && first_error.is_none() {
                                first_error = Some(format!(
                                    "projection `{}` absent from the `checkpoints` answer",
                                    name.as_deref().unwrap_or("")
                                ));
                            }
                            found
                        }
                        Err(e) => {
                            first_error.get_or_insert_with(|| e.clone());
                            None
                        }
                    };
                    Sample { t_s: tick.t_s, reading }
                })
                .collect();
            (name, samples, first_error)
        })
        .collect()
}

/// Every projection seen has read 0 at some sample since `load_end_s`.
pub fn drained_since(seed: &[Option<String>], ticks: &[Tick], load_end_s: f64) -> bool {
    split(seed, ticks)
        .iter()
        .all(|(_, samples, _)| samples.iter().any(|s| s.t_s >= load_end_s && s.reading.is_some_and(|r| r.backlog == 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(backlog: u64) -> Reading {
        Reading { backlog, progress: Some(0), pending: None, lag_s: None }
    }

    #[test]
    fn issue33_a_projection_absent_from_a_sample_is_unknown_there() {
        let named = |n: &str, b| (Some(n.to_owned()), reading(b));
        let ticks = [
            Tick { t_s: 0.0, read: Ok(vec![named("a", 1)]) },
            Tick { t_s: 1.0, read: Err("timed out".into()) },
            Tick { t_s: 2.0, read: Ok(vec![named("a", 0), named("b", 4)]) },
            Tick { t_s: 3.0, read: Ok(vec![named("b", 0)]) },
        ];
        let split = split(&[Some("a".into())], &ticks);
        let backlogs = |i: usize| split[i].1.iter().map(|s| s.reading.map(|r| r.backlog)).collect::<Vec<_>>();
        assert_eq!(split[0].0.as_deref(), Some("a"));
        assert_eq!(backlogs(0), [Some(1), None, Some(0), None]);
        assert_eq!(split[0].2.as_deref(), Some("timed out"));
        assert_eq!(backlogs(1), [None, None, Some(4), Some(0)]);
        assert_eq!(split[1].2.as_deref(), Some("projection `b` absent from the `checkpoints` answer"));
        assert!(drained_since(&[], &ticks, 2.0));
        assert!(!drained_since(&[], &ticks, 3.0), "`a` read nothing since 3 s");
        // Nothing read during the run: the projections read before it are still listed.
        let failed = [Tick { t_s: 0.0, read: Err("refused".into()) }];
        let split = super::split(&[None], &failed);
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].1[0].reading, None);
    }
}
