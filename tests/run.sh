#!/usr/bin/env bash
# The whole test suite, on a fresh machine or this one: checks formatting and lints, installs and
# starts what the tests need, then runs `cargo test`. A missing service is a failure here, never
# a silent skip. `.ci/run` runs exactly this.
#
# Services: s3s-fs (a real S3 server, for tests/store.rs), started on a free loopback port.
# Extra arguments go to `cargo test` and skip the format and lint checks (e.g.
# `bash tests/run.sh --test auth` while working on one file).
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
trap 'kill "$s3_pid" 2>/dev/null || true; rm -rf "$s3_root"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break
  sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then
  echo "s3s-fs did not start on port $s3_port" >&2
  exit 1
fi
export FAULTLINE_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export FAULTLINE_TEST_S3_BUCKET=faultline
export FAULTLINE_TEST_S3_ACCESS_KEY=ci-access-key
export FAULTLINE_TEST_S3_SECRET_KEY=ci-secret-key

cargo test --locked "$@"
