//! Where a crash's module symbols (and variables tables) come from: the symbol store, with the
//! upstream sources it fetches from, or debug files on this machine.

use std::sync::Arc;

use crate::symbols::local::LocalSymbols;
use crate::symbols::SymbolStore;
use crate::upstream::Upstream;

/// Where the stack walker's module symbols come from.
#[derive(Clone)]
pub enum SymbolSource {
    /// The symbol store: each cache is built once, stored, and shared by every node; with
    /// upstream sources, what it lacks is fetched from them into it first.
    Store(Arc<SymbolStore>, Option<Arc<Upstream>>),
    /// Debug files on this machine (`faultline process --symbols`): caches are built in
    /// memory for this run; modules they lack are looked up in the second source, if any
    /// (`--symbols-source`: a local cache folder filled from upstream sources).
    Local(Arc<LocalSymbols>, Option<Box<SymbolSource>>),
}

impl From<Arc<SymbolStore>> for SymbolSource {
    fn from(store: Arc<SymbolStore>) -> SymbolSource {
        SymbolSource::Store(store, None)
    }
}

impl From<LocalSymbols> for SymbolSource {
    fn from(local: LocalSymbols) -> SymbolSource {
        SymbolSource::Local(Arc::new(local), None)
    }
}
