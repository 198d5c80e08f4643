//! Server configuration: where faultline listens, where it keeps symbols and state, and the
//! limits that protect it from hostile uploads.
//!
//! Values come from, lowest precedence first: built-in defaults, an optional TOML file
//! (`--config`), `FAULTLINE_<SECTION>_<KEY>` environment variables (e.g.
//! `FAULTLINE_SERVER_LISTEN=0.0.0.0:8080`, `FAULTLINE_LIMITS_MAX_UPLOAD_BYTES=1000000`), and
//! command-line flags. With no file at all, symbols live under `./symbol-store` and state under
//! `./data`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod sources;

pub use sources::{
    SourceConfig, SourceFileType, SourceKind, SourceLayout, SourceTimeouts, SymbolsConfig,
};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration, one section per concern.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The HTTP listener.
    pub server: ServerConfig,
    /// Where symbol files, derived caches and state are kept.
    pub storage: StorageConfig,
    /// Size caps on everything a client can send.
    pub limits: LimitsConfig,
    /// When derived symbol caches are built.
    pub caches: CachesConfig,
    /// What processing adds to a crash beyond its stack traces (variables).
    pub processing: ProcessingConfig,
    /// Fault-frame skip list additions and in-app rules.
    pub classify: ClassifyConfig,
    /// Signature lists, user counting and the payload budget.
    pub group: GroupConfig,
    /// Where the crash index lives.
    pub index: IndexConfig,
    /// Crash-reporter ingest: limits, workers, throttling.
    pub ingest: IngestConfig,
    /// Who may read what without a token.
    pub auth: AuthConfig,
    /// Several nodes sharing one Postgres index and one S3 bucket.
    pub cluster: ClusterConfig,
    /// Alert delivery: attempts, backoff, timeouts.
    pub alerts: AlertsConfig,
    /// What is deleted for age, and how often the server looks.
    pub retention: RetentionConfig,
    /// Upstream symbol sources for files nobody uploaded.
    pub symbols: SymbolsConfig,
    /// Repositories, releases' commits and suspect commits.
    pub code: CodeConfig,
    /// A group's evidence: how often correlations are computed, how long they stay fresh.
    pub evidence: EvidenceConfig,
}

/// A group's evidence (see docs/EVIDENCE.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Seconds between two looks for groups whose correlations are missing or due (new, grown
    /// by a quarter, or stale while crashes came).
    pub correlations_interval_secs: u64,
    /// Correlations older than this are shown as stale and computed again when crashes come.
    pub correlations_max_age_days: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            correlations_interval_secs: 30,
            correlations_max_age_days: 7,
        }
    }
}

/// The code behind frames (see docs/CODE.md): how often repository mirrors are fetched and how
/// suspect commits are chosen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CodeConfig {
    /// Seconds between two fetches of every repository mirror (0: only when a release names a
    /// commit the mirror lacks).
    pub fetch_interval_secs: u64,
    /// Seconds one git command may run (a fetch, a blame) before it is stopped.
    pub git_timeout_secs: u64,
    /// Authors (name or email) whose commits are never suspects: regular expressions.
    pub bot_authors: Vec<String>,
    /// Commits that last touched a frame's line longer ago than this (days before the group's
    /// first crash) are not suspects; 0 keeps them all.
    pub max_blame_age_days: u64,
    /// `Fixes <prefix>-<group id>` in a release's commit resolves that group in that release.
    pub resolve_prefix: String,
    /// Seconds between two looks for groups whose suspects are missing or stale.
    pub suspects_interval_secs: u64,
}

impl Default for CodeConfig {
    fn default() -> Self {
        CodeConfig {
            fetch_interval_secs: 600,
            git_timeout_secs: 300,
            bot_authors: vec![
                r"\[bot\]".into(),
                r"^dependabot".into(),
                r"^renovate".into(),
                r"^github-actions".into(),
            ],
            max_blame_age_days: 365,
            resolve_prefix: "FAULTLINE".into(),
            suspects_interval_secs: 5,
        }
    }
}

/// Retention (see docs/CONFIGURATION.md): both policies are off by default; leftovers of
/// uploads that never finished are always cleared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete debug files no crash has used for this many days (counted from their upload when
    /// none ever did); 0 keeps them forever.
    pub symbols_unused_days: u64,
    /// Delete crash payloads (dumps, attachments, processed results) received more than this
    /// many days ago; the crash's row, counts and group stay. 0 keeps them forever.
    pub payload_days: u64,
    /// Seconds between two retention runs of the server (`faultline retention` runs one now).
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            symbols_unused_days: 0,
            payload_days: 0,
            interval_secs: 3600,
        }
    }
}

/// Alert delivery (see docs/ALERTS.md). Rules and channels themselves are data, managed through
/// `/api/v1/alert-rules` and `/api/v1/channels`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// This node sends deliveries (off: it only writes them, for other nodes to send).
    pub deliver: bool,
    /// Attempts before a delivery is `dead`.
    pub max_attempts: u32,
    /// The first retry waits this long (milliseconds); each next one twice as long, with
    /// ±20 % jitter, up to `retry_max_secs`. A `Retry-After` answer is honoured instead.
    pub retry_base_ms: u64,
    /// The longest wait between two attempts, seconds.
    pub retry_max_secs: u64,
    /// Seconds one attempt may take (connect, send, answer).
    pub timeout_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            deliver: true,
            max_attempts: 8,
            retry_base_ms: 30_000,
            retry_max_secs: 3600,
            timeout_secs: 10,
        }
    }
}

/// Several nodes on one index (see docs/SCALING.md). The defaults suit one node too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name in queue leases and cluster events; empty means the host name plus a
    /// short hash of `storage.data_dir` (stable across restarts, distinct per node).
    pub node_id: String,
    /// Seconds a claimed crash stays leased to this node; the node renews its leases every
    /// third of it while it works, and another node takes over a lease that ran out.
    pub lease_secs: u64,
    /// Seconds between looks at what other nodes changed (uploads, revocations), besides
    /// Postgres notifications and the look before each claim.
    pub event_poll_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: String::new(),
            lease_secs: 30,
            event_poll_secs: 5,
        }
    }
}

/// Access control (see docs/CONFIGURATION.md and README's "Access" section).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Symbol downloads (`/symbols/…`, `/api/v1/symbols/{debug_id}/{sha256}`) need no token, as
    /// debuggers and stack walkers cannot send one; false requires `symbols:read`.
    pub public_symbol_reads: bool,
    /// `/metrics` needs no token (Prometheus scrapers); false requires `admin`.
    pub public_metrics: bool,
    /// The web UI's session cookie is marked `Secure` (browsers then send it over HTTPS only):
    /// turn on when people reach faultline through HTTPS, directly or through a proxy.
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            public_symbol_reads: true,
            public_metrics: true,
            secure_cookies: false,
        }
    }
}

/// Crash-reporter ingest (see docs/INGEST.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body as sent (compressed), bytes; HTTP 413 beyond it.
    pub max_body_bytes: u64,
    /// Largest body after `Content-Encoding` and dump-part decompression, bytes (gzip bombs).
    pub max_decompressed_bytes: u64,
    /// Processing workers; 0 means one per core.
    pub workers: usize,
    /// Process queued crashes on this node; false makes a receive-only node (crashes are stored
    /// and queued, and other nodes sharing the queue process them).
    pub process_crashes: bool,
    /// Reprocess crashes that lacked symbols when matching symbols are uploaded.
    pub reprocess_on_upload: bool,
    /// Ordered throttle rules; the first match wins, no match accepts.
    pub throttle: Vec<ThrottleRule>,
    /// Refuse crashes without a valid ingest key (403); off, they land in the `default` project.
    pub require_key: bool,
    /// Crash bodies read at once; past it, 503 with `Retry-After` (clients retry later).
    pub max_concurrent_bodies: usize,
    /// Largest text part of a crash (an annotation, `extra.json`, Sentry's event JSON), bytes.
    pub max_field_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 256 << 20,
            max_decompressed_bytes: 1 << 30,
            workers: 0,
            process_crashes: true,
            reprocess_on_upload: true,
            throttle: Vec::new(),
            require_key: false,
            max_concurrent_bodies: 64,
            max_field_bytes: 4 << 20,
        }
    }
}

/// Grouping settings (see docs/GROUPING.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GroupConfig {
    /// Annotations naming the user a crash happened to, first present wins (distinct-user
    /// counts, `GET /api/v1/crashes?annotation.<name>=`).
    pub user_annotations: Vec<String>,
    /// Keep the processed payload of every crash of a new group until it has this many.
    pub payloads_per_new_group: i64,
    /// After that, keep at most this many payloads per group per hour (the rest are counted).
    pub payloads_per_group_hour: i64,
    /// Extra sentinel regexes (signatures start at these frames).
    pub signature_sentinels: Vec<String>,
    /// Extra prefix regexes (signatures continue past these frames).
    pub signature_prefixes: Vec<String>,
    /// Extra irrelevant regexes (signatures skip these frames; `module:<regex>` for modules).
    pub signature_irrelevant: Vec<String>,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            user_annotations: vec![
                "user_id".into(),
                "guid".into(),
                "userid".into(),
                "user".into(),
            ],
            payloads_per_new_group: 100,
            payloads_per_group_hour: 100,
            signature_sentinels: Vec::new(),
            signature_prefixes: Vec::new(),
            signature_irrelevant: Vec::new(),
        }
    }
}

/// The crash index database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Database URL; empty means SQLite at `{storage.data_dir}/index.sqlite`.
    pub url: String,
}

impl Config {
    /// This node's name (see [`ClusterConfig::node_id`]).
    pub fn node_id(&self) -> String {
        if !self.cluster.node_id.is_empty() {
            return self.cluster.node_id.clone();
        }
        use sha2::Digest;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "faultline".to_owned());
        let dir = std::fs::canonicalize(&self.storage.data_dir)
            .unwrap_or_else(|_| self.storage.data_dir.clone());
        let digest = sha2::Sha256::digest(dir.to_string_lossy().as_bytes());
        format!("{host}-{}", &hex::encode(digest)[..8])
    }

    /// The crash index URL, defaulting to SQLite in the data folder.
    pub fn index_url(&self) -> String {
        if self.index.url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("index.sqlite").display()
            )
        } else {
            self.index.url.clone()
        }
    }

    /// Where people reach the server (links in alerts, tickets, evidence): `server.public_url`,
    /// else the listen address.
    pub fn public_url(&self) -> String {
        match self.server.public_url.trim() {
            "" => format!("http://{}", self.server.listen),
            url => url.to_owned(),
        }
    }
}

/// Classification lists users extend (see docs/CLASSIFIERS.md).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// Extra regexes for frames never to blame (function names; `module:<regex>` for modules),
    /// appended to the shipped defaults.
    pub skip_frames: Vec<String>,
    /// Regexes for module names that are application code.
    pub in_app_modules: Vec<String>,
    /// Regexes for source paths that are application code.
    pub in_app_paths: Vec<String>,
}

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port `faultline serve` binds to.
    pub listen: SocketAddr,
    /// Open connections at most; a connection past it is answered 503 with `Retry-After` and
    /// closed.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (slowloris).
    pub header_timeout_secs: u64,
    /// Seconds a request body may go without sending a byte before it is dropped (408).
    pub body_timeout_secs: u64,
    /// The address people reach this server at (`https://crashes.example.com`), for links in
    /// alerts; empty means `http://{listen}`.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 4096,
            header_timeout_secs: 30,
            body_timeout_secs: 60,
            public_url: String::new(),
        }
    }
}

/// Where things are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `fs` (objects under `root`) or `s3` (objects in `[storage.s3]`).
    pub backend: StorageBackend,
    /// Root of the filesystem object store: symbol files, derived caches, crash payloads.
    pub root: PathBuf,
    /// Server state: spooled uploads, the crash index, local copies of S3 caches.
    pub data_dir: PathBuf,
    /// The S3 bucket, when `backend = "s3"`.
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Fs,
            root: PathBuf::from("./symbol-store"),
            data_dir: PathBuf::from("./data"),
            s3: S3Config::default(),
        }
    }
}

/// Which object store keeps symbols, caches and crash payloads.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `storage.root`.
    Fs,
    /// An S3 bucket (`[storage.s3]`).
    S3,
}

/// S3 settings (`[storage.s3]`). Credentials and region fall back to the standard AWS
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, profiles…) when not set here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Prefix for every key (`faultline/` puts everything under that folder).
    pub prefix: String,
    /// Endpoint URL for self-hosted S3 (`http://127.0.0.1:9000`); empty means AWS.
    pub endpoint: String,
    /// Region; empty means the AWS environment's, or `us-east-1` with a custom endpoint.
    pub region: String,
    /// Access key; empty means the AWS environment's.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted servers.
    pub path_style: bool,
    /// Files larger than this go up as multipart uploads, in parts of this size.
    pub multipart_part_bytes: u64,
    /// Attempts per request (the SDK backs off between them).
    pub max_attempts: u32,
    /// Per-request time limit, seconds.
    pub timeout_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            path_style: true,
            multipart_part_bytes: 16 << 20,
            max_attempts: 3,
            timeout_secs: 60,
        }
    }
}

/// Caps on client input. Anything larger is refused with a clear error, never buffered whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted by upload routes (HTTP 413 beyond it).
    pub max_upload_bytes: u64,
    /// Largest total uncompressed size of one archive's entries (an archive bomb beyond it).
    pub max_archive_unpacked_bytes: u64,
    /// Most entries one archive may hold.
    pub max_archive_entries: u64,
    /// Largest minidump processed (memory budget; HTTP 413 beyond it).
    pub max_dump_bytes: u64,
    /// Most threads one minidump may list.
    pub max_threads: usize,
    /// Most modules one minidump may list.
    pub max_modules: usize,
    /// Wall-clock budget for processing one minidump, in milliseconds.
    pub process_time_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_upload_bytes: 4 << 30,
            max_archive_unpacked_bytes: 16 << 30,
            max_archive_entries: 100_000,
            max_dump_bytes: 512 << 20,
            max_threads: 10_000,
            max_modules: 10_000,
            process_time_ms: 60_000,
        }
    }
}

/// What processing reads from a dump beyond its stack traces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingConfig {
    /// Whose frames get the values of their parameters and locals (docs/VARIABLES.md).
    /// Variables can hold personal data: `off` keeps them out of everything stored.
    pub variables: VariablesScope,
    /// `variables` for some projects, by slug (`payments = "off"`), overriding the default.
    pub project_variables: BTreeMap<String, VariablesScope>,
}

impl ProcessingConfig {
    /// Whose frames get variables in the crashes of the project with this slug.
    pub fn variables_for(&self, project_slug: &str) -> VariablesScope {
        self.project_variables
            .get(project_slug)
            .copied()
            .unwrap_or(self.variables)
    }
}

/// Which threads' frames get variables.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VariablesScope {
    /// The crashing (or dump-requesting) thread only.
    #[default]
    CrashingThread,
    /// Every thread.
    AllThreads,
    /// None.
    Off,
}

/// Derived symbol caches (SymCache, CFI).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CachesConfig {
    /// Build caches in the background right after an upload (they are built lazily otherwise).
    pub build_on_upload: bool,
    /// Memory for parsed SymCache/CFI shared by all workers, in bytes.
    pub memory_bytes: u64,
    /// Memory for parsed variables tables (docs/VARIABLES.md), apart from `memory_bytes`; a
    /// module's table larger than this is read from the store again for every crash needing it.
    pub variables_memory_bytes: u64,
    /// How long "no symbols for this module" is remembered before the store is asked again
    /// (an upload of matching symbols forgets it at once).
    pub missing_ttl_secs: u64,
}

impl Default for CachesConfig {
    fn default() -> Self {
        CachesConfig {
            build_on_upload: true,
            memory_bytes: 1 << 30,
            variables_memory_bytes: 1 << 30,
            missing_ttl_secs: 300,
        }
    }
}

/// Section prefixes that `FAULTLINE_*` variables may address; other variables with that prefix
/// (such as `FAULTLINE_CONFIG`) are not configuration keys.
const SECTIONS: [&str; 11] = [
    "server_",
    "alerts_",
    "cluster_",
    "storage_",
    "limits_",
    "caches_",
    "classify_",
    "group_",
    "index_",
    "ingest_",
    "auth_",
];

/// One ingest throttle rule, as configured (`[[ingest.throttle]]`; `ingest/throttle.rs` applies
/// them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleRule {
    /// Name in metrics and in `Discarded=` replies.
    pub name: String,
    /// The annotation the rule looks at.
    pub annotation: String,
    /// Regex the annotation's value must match (a missing annotation never matches).
    pub matches: String,
    /// `accept`, `reject` or `sample`.
    pub action: String,
    /// For `sample`: the percentage kept.
    #[serde(default)]
    pub percent: Option<u32>,
    /// The project (slug) whose crashes the rule judges; every project when absent.
    #[serde(default)]
    pub project: Option<String>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Config {
    /// Loads defaults, then `file` (if given), then `FAULTLINE_*` variables, then `overrides`
    /// (flags, as a partial TOML-shaped value).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Config, ConfigError> {
        // Every section is `#[serde(default)]`: what no layer sets takes its built-in value
        // when the layers are extracted, so the defaults need no layer of their own.
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    path.display()
                )))));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(
                Env::prefixed("FAULTLINE_")
                    .filter(|key| {
                        let key = key.as_str().to_ascii_lowercase();
                        SECTIONS.iter().any(|s| key.starts_with(s))
                    })
                    .map(|key| {
                        let key = key.as_str().to_ascii_lowercase().replacen('_', ".", 1);
                        // The one nested section: FAULTLINE_STORAGE_S3_BUCKET → storage.s3.bucket.
                        match key.strip_prefix("storage.s3_") {
                            Some(rest) => format!("storage.s3.{rest}").into(),
                            None => key.into(),
                        }
                    }),
            )
            .merge(Serialized::defaults(overrides));
        figment.extract().map_err(|e| ConfigError(Box::new(e)))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        figment::Jail::expect_with(|_| {
            let config = Config::load(None, serde_json::json!({})).unwrap();
            assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(config.storage.root, PathBuf::from("./symbol-store"));
            assert_eq!(config.storage.data_dir, PathBuf::from("./data"));
            Ok(())
        });
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "faultline.toml",
                "[server]\nlisten = \"127.0.0.1:1111\"\n[storage]\nroot = \"/from/file\"\ndata_dir = \"/file/data\"\n[limits]\nmax_upload_bytes = 5\n",
            )?;
            jail.set_env("FAULTLINE_STORAGE_ROOT", "/from/env");
            jail.set_env("FAULTLINE_LIMITS_MAX_UPLOAD_BYTES", "77");
            jail.set_env("FAULTLINE_SERVER_LISTEN", "127.0.0.1:2222");
            jail.set_env("FAULTLINE_CONFIG", "ignored.toml");
            jail.set_env("FAULTLINE_STORAGE_S3_BUCKET", "crashes");
            jail.set_env("FAULTLINE_INGEST_REQUIRE_KEY", "true");
            jail.set_env("FAULTLINE_AUTH_PUBLIC_SYMBOL_READS", "false");
            let flags = serde_json::json!({ "server": { "listen": "127.0.0.1:3333" } });
            let config = Config::load(Some(Path::new("faultline.toml")), flags).unwrap();
            assert_eq!(config.server.listen.port(), 3333);
            assert_eq!(config.storage.root, PathBuf::from("/from/env"));
            assert_eq!(config.storage.data_dir, PathBuf::from("/file/data"));
            assert_eq!(config.limits.max_upload_bytes, 77);
            assert_eq!(config.storage.s3.bucket, "crashes");
            assert!(config.ingest.require_key);
            assert!(!config.auth.public_symbol_reads);
            Ok(())
        });
    }

    #[test]
    fn a_project_overrides_whose_variables_are_read() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "faultline.toml",
                "[processing]\nvariables = \"all_threads\"\n[processing.project_variables]\npayments = \"off\"\n",
            )?;
            let config =
                Config::load(Some(Path::new("faultline.toml")), serde_json::json!({})).unwrap();
            assert_eq!(
                config.processing.variables_for("payments"),
                VariablesScope::Off
            );
            assert_eq!(
                config.processing.variables_for("game"),
                VariablesScope::AllThreads
            );
            jail.create_file(
                "bad.toml",
                "[processing.project_variables]\npayments = \"sometimes\"\n",
            )?;
            let err = Config::load(Some(Path::new("bad.toml")), serde_json::json!({}))
                .unwrap_err()
                .to_string();
            assert!(err.contains("sometimes"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nlisten = \"nowhere\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), serde_json::json!({}))
                .unwrap_err()
                .to_string();
            assert!(err.contains("listen"), "{err}");
            jail.create_file("typo.toml", "[storage]\nrooot = \"x\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")), serde_json::json!({}))
                .unwrap_err()
                .to_string();
            assert!(err.contains("rooot"), "{err}");
            let err = Config::load(Some(Path::new("missing.toml")), serde_json::json!({}))
                .unwrap_err()
                .to_string();
            assert!(err.contains("does not exist"), "{err}");
            Ok(())
        });
    }
}
