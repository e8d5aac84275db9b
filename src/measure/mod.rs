//! How the stages measure, below all of them and below the result model: one latency
//! histogram shape and its codec, the per-second intervals they hand over, and the
//! timeline rows they fill in.

pub mod histogram;
pub mod intervals;
pub mod timeline;
