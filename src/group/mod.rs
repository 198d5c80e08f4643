//! Grouping: the signature a person reads, the fingerprint that groups duplicates, and (next)
//! the crash index that keeps groups, their counts and their triage state.

pub mod index;
pub mod normalize;
pub mod signature;
pub mod version;
