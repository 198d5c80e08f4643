//! faultline: a native crash processing server.
//!
//! The data's path, one module per stage (see `docs/ARCHITECTURE.md`):
//! - [`api`]: HTTP endpoints (axum): ingest, symbols, processing, triage, administration.
//! - [`auth`]: projects, ingest keys, API tokens and their scopes.
//! - [`store`]: durable object storage (filesystem; S3 later) behind one trait.
//! - [`symbols`]: identifying debug files, keeping them by debug ID, deriving SymCache/CFI.
//! - [`process`]: minidumps → symbolicated, thread-complete stack traces.
//! - [`classify`]: fault class, evidence, exploitability and the frame to blame.
//! - [`group`]: signatures, fingerprints and the crash index.
//! - [`ingest`]: durable crash-reporter ingest: raw crashes, the persistent queue, workers.
//! - [`cli`]: the `faultline` command line (`serve`, `upload`).
//!
//! [`pipeline`] runs a crash through the stages; shared plumbing: [`config`] (TOML + env + flags) and [`cpu`] (the rayon bridge).

pub mod alerts;
pub mod api;
pub mod auth;
pub mod classify;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod events;
pub mod group;
pub mod ingest;
pub mod pipeline;
pub mod process;
pub mod retention;
pub mod sourcemaps;
pub mod store;
pub mod symbols;
pub mod tickets;
pub mod ui;
