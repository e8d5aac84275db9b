//! `capture = { NAME = "/pointer" }` values, kept per key so `{{capture.NAME}}` in a
//! later operation on the same key reads the latest one. Sharded so concurrent
//! operations on different keys rarely meet on a lock; only built when a template
//! reads captures.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::scenario::CaptureSpec;
use crate::target::Reply;

const SHARDS: usize = 64;

/// `(name, value)` pairs of one key.
type Captures = Vec<(String, String)>;

#[derive(Default)]
pub struct CaptureStore {
    shards: Vec<Mutex<HashMap<u64, Captures>>>,
}

impl CaptureStore {
    pub fn new() -> CaptureStore {
        CaptureStore { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, key: u64) -> &Mutex<HashMap<u64, Captures>> {
        &self.shards[(key % SHARDS as u64) as usize]
    }

    /// The captures of one key (a copy: the lock is not held while rendering).
    pub fn get(&self, key: u64) -> Vec<(String, String)> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(&key).cloned().unwrap_or_default()
    }

    pub fn put(&self, key: u64, values: Vec<(String, String)>) {
        if values.is_empty() {
            return;
        }
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.entry(key).or_default();
        for (name, value) in values {
            match entry.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => entry.push((name, value)),
            }
        }
    }
}

/// Takes each capture from an answer (its status, headers or JSON body); a capture the
/// answer does not have takes nothing.
pub fn extract(reply: &Reply, specs: &[(String, CaptureSpec)]) -> Vec<(String, String)> {
    // The body is parsed once, and only when a capture reads it.
    let json = specs
        .iter()
        .any(|(_, c)| c.from.reads_body())
        .then(|| serde_json::from_slice::<serde_json::Value>(&reply.body).ok())
        .flatten();
    specs
        .iter()
        .filter_map(|(name, spec)| Some((name.clone(), spec.take(reply.status, &reply.headers, json.as_ref())?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::selector::{Scope, Selector};

    fn reply(status: u16, location: &str, body: &str) -> Reply {
        let mut headers = http::HeaderMap::new();
        headers.insert("location", http::HeaderValue::from_str(location).expect("valid"));
        Reply { status, headers, body: bytes::Bytes::from(body.to_owned()), received: None }
    }

    fn spec(from: &str, regex: Option<&str>) -> CaptureSpec {
        CaptureSpec {
            from: Selector::parse(from, Scope::Answer).expect("valid"),
            regex: regex.map(|r| regex::Regex::new(r).expect("valid")),
        }
    }

    #[test]
    fn latest_capture_per_key_wins() {
        let store = CaptureStore::new();
        let specs = [("version".to_owned(), spec("/version", None)), ("x".to_owned(), spec("/missing", None))];
        store.put(7, extract(&reply(200, "/", r#"{"version": 3}"#), &specs));
        store.put(7, extract(&reply(200, "/", r#"{"version": 4}"#), &specs));
        assert_eq!(store.get(7), vec![("version".to_owned(), "4".to_owned())]);
        assert!(store.get(8).is_empty());
        assert!(extract(&reply(200, "/", "not json"), &specs).is_empty());
    }

    #[test]
    fn captures_from_headers_and_status_without_a_body() {
        let specs = [
            ("id".to_owned(), spec("header:Location", Some("/todos/([^/?]+)"))),
            ("status".to_owned(), spec("status", None)),
        ];
        let got = extract(&reply(201, "/todos/9f3a?x=1", ""), &specs);
        assert_eq!(got, vec![("id".to_owned(), "9f3a".to_owned()), ("status".to_owned(), "201".to_owned())]);
    }
}
