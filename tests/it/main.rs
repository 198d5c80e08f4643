//! The integration suite, one binary (as symbolicator's is): each module tests one part of
//! faultline end to end over real services (HTTP on loopback, SQLite and Postgres, s3s-fs,
//! Chromium, aiosmtpd, the real symbol clients) that `tests/run.sh` installs and starts.
//! One binary links the crate once instead of once per file.

#[macro_use]
mod common;

mod alerts;
mod apple_exceptions;
mod apple_reports;
mod architecture;
mod auth;
mod bcsymbolmaps;
mod browser;
mod classify;
mod cli;
mod cluster;
mod deploy;
mod dotnet;
mod durability;
mod events;
mod evidence;
mod evidence_scenario;
mod variables;
mod webassembly;
mod front_door;
mod generated_sym;
mod grouping;
mod health;
mod identify;
mod il2cpp;
mod ingest;
mod mcp;
mod migrations;
mod pdb_variables;
mod process;
mod proguard;
mod queue;
mod retention;
mod sentry_cli;
mod sourcemaps;
mod store;
mod suspects;
mod symbol_servers;
mod symbols_api;
mod tickets;
mod ui;
mod upload_protocols;
mod upstream;
mod upstream_servers;
