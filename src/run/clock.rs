//! A shard's clock against the target's (issue 13): shards on several hosts start at one
//! `--start-at` by their own clocks, so how far apart their schedules really are is how
//! far apart their clocks are. Each shard measures its offset against one clock they all
//! see, the target's, from the `Date` header of its answers (whole seconds): it asks
//! until the header's second changes, and the change happened between the request
//! before and the answer after, which bounds it to a few milliseconds on a LAN.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::target::{Request, Target};

/// The target's clock minus this host's, and how well it is known (±).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockOffset {
    pub offset_ms: f64,
    pub error_ms: f64,
}

/// Asks `GET /` of the target until its `Date` second changes, within `within`.
pub async fn estimate<T: Target>(target: &T, within: Duration) -> Result<ClockOffset, String> {
    let deadline = SystemTime::now() + within;
    // (local send time, server second) of the previous answer.
    let mut previous: Option<(SystemTime, u64)> = None;
    while SystemTime::now() < deadline {
        let sent = SystemTime::now();
        let request =
            Request { method: http::Method::GET, path: "/".into(), body: None, headers: Vec::new(), kafka: None };
        let reply = tokio::time::timeout(Duration::from_secs(1), target.send(request))
            .await
            .map_err(|_| "the target did not answer within 1 s".to_owned())?
            .map_err(|failure| format!("the target did not answer ({failure:?})"))?;
        let received = SystemTime::now();
        let date = reply
            .headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .ok_or("the target's answers carry no Date header")?;
        let second = date.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match previous {
            // The server's clock reached `second` after it stamped the previous answer
            // (sent at or after `earlier`) and before it stamped this one (answered by
            // `received`).
            Some((earlier, before)) if second > before => return Ok(offset_at(second, earlier, received)),
            _ => previous = Some((sent, second)),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!("the target's Date second did not change within {within:?}"))
}

/// The server's clock read `second`.000 somewhere in local [from, to]: the midpoint.
fn offset_at(second: u64, from: SystemTime, to: SystemTime) -> ClockOffset {
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1e3;
    let (from, to) = (ms(from), ms(to));
    ClockOffset { offset_ms: second as f64 * 1e3 - (from + to) / 2.0, error_ms: (to - from) / 2.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_is_placed_in_the_middle_of_its_window() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        // Server second 100 began between local 99.990 s and 100.000 s: the server is 5 ms ahead.
        let offset = offset_at(100, at(99_990), at(100_000));
        assert!((offset.offset_ms - 5.0).abs() < 1e-6 && (offset.error_ms - 5.0).abs() < 1e-6, "{offset:?}");
    }
}
