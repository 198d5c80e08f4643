//! Who may do what: projects (the crashes and groups of one product), their ingest keys (what
//! crash reporters send), and API tokens with scopes (what people and build systems send).
//!
//! Secrets are random (160 bits), shown once, and kept only as SHA-256 digests: a token is found
//! by its digest and the digests are then compared in constant time. A token's scopes are
//! independent (`admin` does not imply `triage:read`); a token may be limited to projects.

mod registry;
mod sessions;

pub use registry::{
    AuthFailure, IngestKey, NewToken, Project, ProjectError, Registry, Token, DEFAULT_PROJECT,
    TOKEN_RECHECK,
};
pub use sessions::{csrf_token, SignedIn, SESSION_LIFETIME};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Sending crashes with a bearer token (`POST /api/v1/minidump`, or any crash route).
    Ingest,
    /// Reading debug files and their caches; symbolicating raw frames.
    SymbolsRead,
    /// Uploading debug files (what debuggers and stack walkers will download).
    SymbolsWrite,
    /// Reading crashes and groups (crash payloads carry user data).
    TriageRead,
    /// Changing groups (state, assignee, merges) and reprocessing crashes.
    TriageWrite,
    /// Creating releases, setting their commits, recording deploys (what CI holds).
    ReleasesWrite,
    /// Managing projects, ingest keys and tokens.
    Admin,
}

impl Scope {
    /// Every scope, in the order they are listed.
    pub const ALL: [Scope; 7] = [
        Scope::Ingest,
        Scope::SymbolsRead,
        Scope::SymbolsWrite,
        Scope::TriageRead,
        Scope::TriageWrite,
        Scope::ReleasesWrite,
        Scope::Admin,
    ];

    /// The scope's name as tokens, the CLI and error messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::SymbolsRead => "symbols:read",
            Scope::SymbolsWrite => "symbols:write",
            Scope::TriageRead => "triage:read",
            Scope::TriageWrite => "triage:write",
            Scope::ReleasesWrite => "releases:write",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {s:?}: use one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new random secret: `prefix` then 40 hex digits (160 bits).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{prefix}{}", hex::encode(bytes))
}

/// A short random identifier (for listing and revoking without showing the secret).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    format!("{prefix}{}", hex::encode(bytes))
}

/// What is kept of a secret: its SHA-256, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two digests are equal, in time independent of where they differ.
pub fn digests_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_ones_are_named() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        let err = "triage".parse::<Scope>().unwrap_err();
        assert!(err.contains("triage:read"), "{err}");
    }

    #[test]
    fn secrets_are_long_random_and_digested() {
        let a = new_secret("flt_");
        let b = new_secret("flt_");
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 40);
        assert_eq!(digest(&a).len(), 64);
        assert!(!digest(&a).contains(&a[4..]));
        assert!(digests_match(&digest(&a), &digest(&a)));
        assert!(!digests_match(&digest(&a), &digest(&b)));
        assert!(!digests_match(&digest(&a), "short"));
    }
}
