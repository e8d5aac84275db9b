//! Operation refs: `{{ref}}` renders `RUNID.SHARD.SEQ` (run id in hex), unique per
//! operation and traceable back to this run, shard and sequence number, so a ledger
//! of acknowledged refs is a bitmap of sequence numbers rather than a set of strings.

use std::fmt::Write as _;

/// A decoded ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRef {
    pub run_id: u32,
    pub shard: u32,
    pub seq: u64,
}

impl OpRef {
    /// Appends the text form to `out`.
    pub fn write_to(self, out: &mut String) {
        let _ = write!(out, "{:08x}.{}.{}", self.run_id, self.shard, self.seq);
    }

    /// Parses the text form; `None` for anything this harness did not write.
    pub fn parse(text: &str) -> Option<OpRef> {
        let mut parts = text.split('.');
        let run = parts.next()?;
        if run.len() != 8 {
            return None;
        }
        let run_id = u32::from_str_radix(run, 16).ok()?;
        let shard = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(OpRef { run_id, shard, seq })
    }
}

impl std::fmt::Display for OpRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}.{}.{}", self.run_id, self.shard, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = OpRef { run_id: 0x3fa9_c2d1, shard: 2, seq: 12345 };
        let mut s = String::new();
        r.write_to(&mut s);
        assert_eq!(s, "3fa9c2d1.2.12345");
        assert_eq!(OpRef::parse(&s), Some(r));
        assert_eq!(OpRef::parse("3fa9c2d1.2"), None);
        assert_eq!(OpRef::parse("xyz.1.2"), None);
        assert_eq!(OpRef::parse("3fa9c2d1.2.3.4"), None);
    }
}
