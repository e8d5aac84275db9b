//! When `[verify] page` stops reading pages (issue 32). A server that ignores the page
//! parameter answers the same page for ever; one whose pages never end answers new ones
//! for ever. Before, both were read up to 100,000 pages per key with `settle` ignored,
//! and what was not found was called missed. Now a key (or the global list) stops at the
//! first of: a page that selects nothing (the end, as before), a page whose body equals
//! the one before it, `settle` passing, or `MAX_PAGES`; the last three make it
//! "could not verify" (its refs unknown, with the reason), never missed.

use std::hash::{Hash as _, Hasher as _};
use std::time::Instant;

/// Pages read at most per key (or for the global list) in one sweep.
pub const MAX_PAGES: u64 = 10_000;

/// Why paging stopped before the last page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStop {
    /// A page's body equal to the one before: the server ignores the page parameter.
    SamePage,
    /// `settle` passed while reading pages.
    Settle,
    /// `MAX_PAGES` pages read and still not at the end.
    MaxPages,
}

/// Watches the pages of one key as they are read.
pub struct PageGuard {
    deadline: Instant,
    read: u64,
    last_body: Option<u64>,
}

impl PageGuard {
    /// Paging that must stop by `deadline` (the end of `settle`).
    pub fn new(deadline: Instant) -> PageGuard {
        PageGuard { deadline, read: 0, last_body: None }
    }

    /// Notes a page just read (`body`); `Some` when no further page may be read.
    pub fn read(&mut self, body: &[u8]) -> Option<PageStop> {
        self.read += 1;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let hash = hasher.finish();
        if self.last_body.replace(hash) == Some(hash) {
            Some(PageStop::SamePage)
        } else if self.read >= MAX_PAGES {
            Some(PageStop::MaxPages)
        } else if Instant::now() >= self.deadline {
            Some(PageStop::Settle)
        } else {
            None
        }
    }
}

/// How many keys (the global list counts as one) stopped paging for each reason, in a sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStops {
    pub same_page: u64,
    pub settle: u64,
    pub max_pages: u64,
}

impl PageStops {
    pub fn add(&mut self, stop: PageStop) {
        match stop {
            PageStop::SamePage => self.same_page += 1,
            PageStop::Settle => self.settle += 1,
            PageStop::MaxPages => self.max_pages += 1,
        }
    }

    /// The reasons, for `events.unknown_because` ("could not verify").
    pub fn reasons(&self, param: &str) -> Vec<String> {
        let plural = |n: u64| if n == 1 { "" } else { "s" };
        let mut reasons = Vec::new();
        if self.same_page > 0 {
            reasons.push(format!(
                "{} key{} (or list): a page equal to the one before (does the server ignore `{param}`?)",
                self.same_page,
                plural(self.same_page)
            ));
        }
        if self.settle > 0 {
            reasons.push(format!("{} key{}: settle passed while reading pages", self.settle, plural(self.settle)));
        }
        if self.max_pages > 0 {
            reasons.push(format!(
                "{} key{}: still not at the last page after {MAX_PAGES} pages",
                self.max_pages,
                plural(self.max_pages)
            ));
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_repeated_page_a_deadline_and_the_cap_stop_paging() {
        let later = Instant::now() + Duration::from_secs(3600);
        let mut guard = PageGuard::new(later);
        assert_eq!(guard.read(b"[1,2]"), None);
        assert_eq!(guard.read(b"[3,4]"), None);
        assert_eq!(guard.read(b"[3,4]"), Some(PageStop::SamePage));

        let mut guard = PageGuard::new(Instant::now());
        assert_eq!(guard.read(b"[1]"), Some(PageStop::Settle));

        let mut guard = PageGuard::new(later);
        let stops: Vec<_> = (0..MAX_PAGES).filter_map(|page| guard.read(page.to_string().as_bytes())).collect();
        assert_eq!(stops, [PageStop::MaxPages]);
    }
}
