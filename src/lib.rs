//! faultline: a native crash processing server.
//!
//! One module per stage of the data's path, in the order data flows: each imports only modules
//! listed above it (docs/ARCHITECTURE.md draws the map; `tests/it/architecture.rs` checks that
//! no module imports one that imports it back).
pub mod config; // settings: TOML + environment + flags; imports nothing of ours
pub mod clock; // the one clock: now, in Unix seconds
pub mod cpu; // the bridge from async code to the rayon pool, and one-shot runs' own thread
pub mod store; // durable object storage (filesystem or S3) behind one trait
pub mod variables; // values of parameters and locals: DWARF scopes and locations, read from a dump
pub mod sourcemaps; // JavaScript source maps and bundles: identifying, resolving, URL matching
pub mod symbols; // debug files: identifying, keeping by debug ID, SymCache/CFI caches
pub mod upstream; // symbol servers nobody uploads to: sources, layouts, fetches, health
pub mod process; // minidumps and raw frames -> symbolicated, thread-complete stack traces
pub mod jvm; // Java and Kotlin frames de-obfuscated through ProGuard / R8 mappings
pub mod classify; // fault class, evidence, exploitability, the frame to blame, the verdict
pub mod group; // signatures, fingerprints, and the crash index (crashes, groups, triage)
pub mod cluster; // what nodes sharing one database tell each other
pub mod auth; // projects, ingest keys, API tokens and their scopes, UI sessions
pub mod outbound; // what alerts and tickets send out: the message, how a delivery attempt went
pub mod tickets; // Jira and GitHub issues that follow groups
pub mod alerts; // alert rules, channels, the delivery outbox
pub mod pipeline; // one crash through process -> classify -> signature; the crash view
pub mod events; // Sentry events and envelopes: processed, grouped, reported like dumps
pub mod apple_reports; // Apple crash reports (.crash text, .ips JSON) read into native events
pub mod ingest; // durable crash-reporter ingest: raw crashes, the persistent queue, workers
pub mod retention; // deleting what is past its age
pub mod triage; // the triage service: changing and merging groups, reading a stored crash
pub mod uploads; // the upload service: storing debug files and announcing what they unblock
pub mod code; // repositories: mirrors, code mappings, line links, source context
pub mod releases; // releases, the commits each brought, deploys; groups fixed by a commit
pub mod suspects; // suspect commits of a group: candidates, exclusions, scores, reasons
pub mod health; // release health: sessions, crash-free rates, adoption, group rates
pub mod correlations; // what is over-represented in a group's crashes (Mozilla's tests)
pub mod evidence; // a group's evidence in one place: verdict, suspects, correlations, timeline, history
pub mod app; // the application: every store and service, opened once from the configuration
pub mod http; // what the two front ends share about HTTP: errors, bounded bodies, paths
pub mod api; // the JSON API: thin routes over the application's services
pub mod ui; // the web UI: server-rendered pages over the same services
pub mod mcp; // the Model Context Protocol server for coding assistants: tools over the same services
pub mod server; // binding, workers, background jobs, the router, graceful drain
pub mod cli; // the `faultline` command line
