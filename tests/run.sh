#!/usr/bin/env bash
# The whole test suite, on a fresh machine or this one: checks formatting and lints, installs and
# starts what the tests need, then runs `cargo test`. A missing service is a failure here, never
# a silent skip. `.ci/run` runs exactly this.
#
# Tools: git and gcc (tests/it/suspects.rs), g++ and binutils' objdump (tests/it/il2cpp.rs); docker-compose, kubectl, systemd-analyze (Debian packages) and kubernetes-validate
# (PyPI), for tests/it/deploy.rs; Debian's chromium and chromium-driver for tests/it/browser.rs;
# aiosmtpd (PyPI) and openssl, for the real SMTP server tests/it/alerts.rs starts; jira820 (PyPI),
# the Jira-compatible server tests/it/tickets.rs starts; debuginfod-find and gdb (Debian),
# sentry-cli (PyPI) and minidump-stackwalk (crates.io), the real symbol clients of
# tests/it/symbol_servers.rs, tests/it/sentry_cli.rs and tests/it/generated_sym.rs; sentry-sdk (PyPI) and
# @sentry/node (npm, with Debian's nodejs), the real event senders of tests/it/events.rs and
# tests/it/sentry_cli.rs; SciPy (PyPI), the reference of tests/it/evidence.rs's statistics; the MCP
# Python SDK (PyPI mcp), the client of tests/it/mcp.rs.
# Services, each on a free loopback port in a temporary folder: s3s-fs (a real S3 server),
# chromedriver (WebDriver for a headless Chromium), and a PostgreSQL 15 cluster (initdb + pg_ctl, as the `postgres` user when run as root, since initdb
# refuses root). With FAULTLINE_TEST_REQUIRE_SERVICES=1 a test that lacks one fails instead of
# skipping.
# Extra arguments go to `cargo test` and skip the format and lint checks (e.g.
# `bash tests/run.sh --test it auth::` while working on one module of tests/it/).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is required (the rust machine kind ships it)" >&2
  exit 1
fi
if [ ! -d ../shared/fixtures ]; then
  echo "../shared/fixtures is missing: clone the project with shared/ beside it" >&2
  exit 1
fi

if [ "$#" -eq 0 ]; then
  cargo fmt --check
  cargo clippy --all-targets --locked -- -D warnings
fi

# Deployment validators: installed when missing (as root, from Debian's packages and PyPI).
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing $*: install it (Debian packages) and run again" >&2
    exit 1
  fi
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
command -v docker-compose >/dev/null || apt_install docker-compose
command -v systemd-analyze >/dev/null || apt_install systemd
command -v kubectl >/dev/null || apt_install kubectl || apt_install kubernetes-client
command -v chromium >/dev/null || apt_install chromium
command -v chromedriver >/dev/null || apt_install chromium-driver
# Real debuginfod clients for tests/it/symbol_servers.rs.
command -v debuginfod-find >/dev/null || apt_install debuginfod
command -v gdb >/dev/null || apt_install gdb
# gcab builds the CAB-compressed PDBs of a symstore tree for tests/it/upstream.rs; elfutils' debuginfod
# server (package debuginfod, installed above) is its real upstream.
command -v debuginfod >/dev/null || apt_install debuginfod
command -v gcab >/dev/null || apt_install gcab
# git (the repositories, blame and the real `sentry-cli releases set-commits --local`) and gcc (a
# program built from a test repository, crashing on a known line) for tests/it/suspects.rs.
command -v git >/dev/null || apt_install git
command -v gcc >/dev/null || apt_install gcc libc6-dev
# g++ (IL2CPP's generated C++ compiled into a game module) and binutils' objdump (its DWARF line
# table, the truth the frames are checked against) for tests/it/il2cpp.rs.
command -v g++ >/dev/null || apt_install g++
command -v objdump >/dev/null || apt_install binutils
# rust-minidump's minidump-stackwalk 0.27, the real `--symbols-url` client of tests/it/generated_sym.rs:
# a debug build (about 3 minutes on 2 cores, against 10 for release; the tests walk small dumps).
MINIDUMP_STACKWALK="$(command -v minidump-stackwalk || echo "$PWD/target/tools/bin/minidump-stackwalk")"
if [ ! -x "$MINIDUMP_STACKWALK" ]; then
  CARGO_TARGET_DIR="$PWD/target/tools-build" cargo install -q --debug --locked minidump-stackwalk@0.27.0 --root "$PWD/target/tools" ||
    { echo "minidump-stackwalk could not be installed" >&2; exit 1; }
  MINIDUMP_STACKWALK="$PWD/target/tools/bin/minidump-stackwalk"
fi
export MINIDUMP_STACKWALK
# The real sentry-cli (PyPI) for tests/it/sentry_cli.rs.
if ! command -v sentry-cli >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check sentry-cli
  command -v pyenv >/dev/null && pyenv rehash
fi
command -v sentry-cli >/dev/null || { echo "sentry-cli could not be installed" >&2; exit 1; }
# Real Sentry SDKs sending events (tests/it/events.rs, tests/it/sentry_cli.rs): sentry-sdk for Python
# (PyPI) and @sentry/node for Node.js (npm, kept under target/tools/node).
# With brotli installed the Python SDK compresses its envelopes with `br`, as in production.
python3 -c "import sentry_sdk, brotli" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "sentry-sdk==2.75.0" brotli
python3 -c "import sentry_sdk, brotli" || { echo "sentry-sdk and brotli could not be installed" >&2; exit 1; }
# SciPy (PyPI): the reference for the correlations' statistics (tests/it/evidence.rs), as
# Mozilla's crash correlations call it.
python3 -c "import scipy" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check scipy
python3 -c "import scipy" || { echo "scipy could not be installed" >&2; exit 1; }
# The official MCP Python SDK (PyPI), the real client of tests/it/mcp.rs.
python3 -c "import mcp.client.streamable_http" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "mcp==2.3.0"
python3 -c "import mcp.client.streamable_http" || { echo "the MCP Python SDK could not be installed" >&2; exit 1; }
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
SENTRY_NODE_ROOT="$PWD/target/tools/node"
if [ ! -f "$SENTRY_NODE_ROOT/node_modules/@sentry/node/package.json" ]; then
  mkdir -p "$SENTRY_NODE_ROOT"
  npm install -q --no-audit --no-fund --prefix "$SENTRY_NODE_ROOT" "@sentry/node@9.47.2" >/dev/null ||
    { echo "@sentry/node could not be installed (npm)" >&2; exit 1; }
fi
export FAULTLINE_TEST_SENTRY_NODE="$SENTRY_NODE_ROOT/node_modules/@sentry/node"
# A real SMTP server for the alert tests (tests/smtp_server.py), and openssl for its certificate.
python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check aiosmtpd
python3 -c "import aiosmtpd" || { echo "aiosmtpd could not be installed" >&2; exit 1; }
# A Jira-compatible server for tests/it/tickets.rs (jira820 imitates Jira Data Center's REST v2).
python3 -c "import jira820" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check jira820
python3 -c "import jira820" || { echo "jira820 could not be installed" >&2; exit 1; }
command -v openssl >/dev/null || apt_install openssl
if ! command -v kubernetes-validate >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check kubernetes-validate
  command -v pyenv >/dev/null && pyenv rehash
fi

# A real S3 server: s3s-fs, checking request signatures.
S3S_FS="$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")"
if [ ! -x "$S3S_FS" ]; then
  cargo install --locked s3s-fs@0.14.1 --features binary
  S3S_FS="$HOME/.cargo/bin/s3s-fs"
fi
export S3S_FS
s3_root="$(mktemp -d)"
mkdir -p "$s3_root/faultline"
s3_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$S3S_FS" --host 127.0.0.1 --port "$s3_port" --access-key ci-access-key --secret-key ci-secret-key "$s3_root" >/dev/null 2>&1 &
s3_pid=$!
pg_root=""
wd_pid=""
cleanup() {
  kill "$s3_pid" 2>/dev/null || true
  [ -n "$wd_pid" ] && kill "$wd_pid" 2>/dev/null || true
  rm -f "${wd_log:-}"
  rm -rf "$s3_root"
  if [ -n "$pg_root" ]; then
    as_pg pg_ctl -D "$pg_root/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_root"
  fi
}
trap cleanup EXIT
# Waits up to 10 s for a server to listen on loopback port $1; fails naming $2 (and showing the
# log $3, if given) otherwise.
wait_for_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not start on port $1" >&2
  [ -n "${3:-}" ] && cat "$3" >&2
  exit 1
}
wait_for_port "$s3_port" s3s-fs
export FAULTLINE_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export FAULTLINE_TEST_S3_BUCKET=faultline
export FAULTLINE_TEST_S3_ACCESS_KEY=ci-access-key
export FAULTLINE_TEST_S3_SECRET_KEY=ci-secret-key

# A real browser: chromedriver drives Debian's Chromium (tests/it/browser.rs starts it headless).
wd_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
wd_log="$(mktemp)"
chromedriver --port="$wd_port" --allowed-ips=127.0.0.1 >"$wd_log" 2>&1 &
wd_pid=$!
wait_for_port "$wd_port" chromedriver "$wd_log"
export FAULTLINE_TEST_WEBDRIVER="http://127.0.0.1:$wd_port"

# A real Postgres: a throwaway cluster with trust authentication on loopback.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$PG_BIN" ] && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q postgresql >/dev/null
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
  else
    echo "PostgreSQL (initdb, pg_ctl) is required: install Debian's postgresql package" >&2
    exit 1
  fi
fi
export PATH="${PG_BIN:+$PG_BIN:}$PATH"
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- env PATH="$PATH" "$@"
  else
    "$@"
  fi
}
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --no-create-home postgres
fi
pg_root="$(mktemp -d)"
chmod 755 "$pg_root"
[ "$(id -u)" = 0 ] && chown postgres "$pg_root"
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg initdb -D "$pg_root/data" -U postgres -A trust -E UTF8 --no-sync >"$pg_root/initdb.log" 2>&1 ||
  { cat "$pg_root/initdb.log" >&2; exit 1; }
as_pg pg_ctl -D "$pg_root/data" -l "$pg_root/server.log" -w -o \
  "-p $pg_port -k $pg_root -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$pg_root/server.log" >&2; exit 1; }
export FAULTLINE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export FAULTLINE_TEST_REQUIRE_SERVICES=1

cargo test --locked "$@"
