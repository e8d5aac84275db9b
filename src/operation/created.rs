//! Keys this run did not choose: ids the target made (issue 12).
//!
//! A create whose id is made by the server has no `{{key}}`; with `creates_key = "id"`
//! the id it answers (from its body or a `Location` header) joins this pool, and
//! operations with `keys = "created"` act on those entities. Key indices of created ids
//! start at `CREATED_BASE`, so one `u64` names any key, in the ledger as everywhere.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngExt as _;
use rand::rngs::SmallRng;

/// Key index of the first created id (`[mix] keys` indices stay far below).
pub const CREATED_BASE: u64 = 1 << 62;
/// The key of a keyless operation (no `{{key}}` in it).
pub const NO_KEY: u64 = u64::MAX;
/// Created ids kept at most (about 50 MB of ids); later ones are used once and not kept.
pub const MAX_CREATED: usize = 1_000_000;
/// The longest id kept, in bytes (issue 32: 900 KB ids grew the pool to 2.64 GB in 40 s).
/// With `MAX_CREATED`, the pool holds at most 1 GiB however long the target's ids are;
/// real ids (UUIDs, ULIDs, numbers, slugs) are far under it.
pub const MAX_ID_BYTES: usize = 1024;

#[derive(Default)]
pub struct CreatedKeys {
    ids: RwLock<Vec<String>>,
    len: AtomicU64,
    /// Ids refused for their length (`MAX_ID_BYTES`).
    too_long: AtomicU64,
}

impl CreatedKeys {
    /// Adds a created id; its key index, or `None` when the pool is full or the id is
    /// longer than `MAX_ID_BYTES` (counted: `too_long`). A refused id's command is
    /// keyless: nothing acts on it and `[verify]` cannot find it.
    pub fn add(&self, id: String) -> Option<u64> {
        if id.len() > MAX_ID_BYTES {
            self.too_long.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        if ids.len() >= MAX_CREATED {
            return None;
        }
        ids.push(id);
        self.len.store(ids.len() as u64, Ordering::Release);
        Some(CREATED_BASE + ids.len() as u64 - 1)
    }

    /// The id of a created key index.
    pub fn get(&self, key: u64) -> Option<String> {
        let index = usize::try_from(key.checked_sub(CREATED_BASE)?).ok()?;
        self.ids.read().unwrap_or_else(|e| e.into_inner()).get(index).cloned()
    }

    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The warning for result.json when ids were refused for their length.
    pub fn warning(&self) -> Option<String> {
        let refused = self.too_long.load(Ordering::Relaxed);
        (refused > 0).then(|| {
            format!(
                "creates_key: {refused} created ids longer than {MAX_ID_BYTES} bytes were not kept as keys \
                 (their commands are keyless: nothing acts on them, [verify] cannot find them)"
            )
        })
    }

    /// A created key, uniformly; `None` while none exists.
    pub fn pick(&self, rng: &mut SmallRng) -> Option<u64> {
        let len = self.len();
        (len > 0).then(|| CREATED_BASE + rng.random_range(0..len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn created_ids_get_their_own_key_indices() {
        let pool = CreatedKeys::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(pool.pick(&mut rng), None);
        let a = pool.add("42".into()).expect("room");
        let b = pool.add("43".into()).expect("room");
        assert_eq!((a, b), (CREATED_BASE, CREATED_BASE + 1));
        assert_eq!(pool.get(b).as_deref(), Some("43"));
        assert_eq!(pool.get(7), None);
        assert!((0..20).all(|_| pool.pick(&mut rng).is_some_and(|k| k == a || k == b)));
    }

    /// Issue 32: an id over `MAX_ID_BYTES` is refused and counted; the pool keeps none of it.
    #[test]
    fn issue32_ids_over_the_cap_are_refused_and_counted() {
        let pool = CreatedKeys::default();
        assert_eq!(pool.warning(), None);
        assert!(pool.add("x".repeat(MAX_ID_BYTES)).is_some(), "at the cap: kept");
        for _ in 0..3 {
            assert_eq!(pool.add("x".repeat(900_000)), None);
        }
        assert_eq!(pool.len(), 1);
        let warning = pool.warning().expect("refused ids");
        assert!(warning.starts_with("creates_key: 3 created ids longer than 1024 bytes"), "{warning}");
    }
}
