//! `capture = { NAME = "/pointer" }` values, kept per key so `{{capture.NAME}}` in a
//! later operation on the same key reads the latest one. Sharded so concurrent
//! operations on different keys rarely meet on a lock; only built when a template
//! reads captures.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// Extracts `name -> pointer` values from a JSON body; strings as they are, other
/// values in their JSON form. Missing pointers capture nothing.
pub fn extract(body: &[u8], pointers: &[(String, String)]) -> Vec<(String, String)> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    pointers
        .iter()
        .filter_map(|(name, pointer)| {
            let value = json.pointer(pointer)?;
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_capture_per_key_wins() {
        let store = CaptureStore::new();
        let pointers = [("version".to_owned(), "/version".to_owned()), ("x".to_owned(), "/missing".to_owned())];
        store.put(7, extract(br#"{"version": 3}"#, &pointers));
        store.put(7, extract(br#"{"version": 4}"#, &pointers));
        assert_eq!(store.get(7), vec![("version".to_owned(), "4".to_owned())]);
        assert!(store.get(8).is_empty());
        assert!(extract(b"not json", &pointers).is_empty());
    }
}
