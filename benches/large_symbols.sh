#!/usr/bin/env bash
# Large symbols: a real minidump of a multi-threaded process whose main module carries over
# 100 MB of DWARF — a running faultline built with full debug info — processed by a release
# faultline server, cold (first crash right after uploading the binary: SymCache and CFI are
# built inside that request) and warm (caches in memory). Prints a table.
# Usage: bash benches/large_symbols.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
# The program to dump only needs to be big and multi-threaded: build it once.
[ -x target/release-debug/faultline ] || cargo build --profile release-debug --quiet
cargo build --release --quiet --example crasher --features crasher
big=target/release-debug/faultline
dwarf=$(size -A "$big" | awk '/^\.debug_/ {s += $2} END {print s}')
work=$(mktemp -d)
cleanup() { kill "${target_pid:-}" "${server_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; exit 1; }

# The process to dump: the debug-info build, serving (tokio and rayon worker threads).
p1=$(port)
FAULTLINE_LOG=error "$big" serve --listen "127.0.0.1:$p1" --store "$work/s1" --data-dir "$work/d1" & target_pid=$!
wait_port "$p1"
target/release/examples/crasher --dump-pid "$target_pid" "$work/big.dmp"
threads=$(ls "/proc/$target_pid/task" | wc -l)
kill "$target_pid"

# The measuring server: release build, caches built lazily (inside the first request).
p2=$(port)
FAULTLINE_LOG=error FAULTLINE_CACHES_BUILD_ON_UPLOAD=false target/release/faultline serve \
  --listen "127.0.0.1:$p2" --store "$work/s2" --data-dir "$work/d2" & server_pid=$!
wait_port "$p2"
auth="Authorization: Bearer $(cat "$work/d2/admin-token")"
curl -sf -H "$auth" --data-binary @"$big" "http://127.0.0.1:$p2/api/v1/symbols?name=faultline" >/dev/null
ms() { curl -sf -H "$auth" -o /dev/null -w '%{time_total}' --data-binary @"$work/big.dmp" "http://127.0.0.1:$p2/api/v1/minidump" | awk '{printf "%.1f", $1 * 1000}'; }
cold=$(ms)
warm=()
for _ in $(seq 15); do warm+=("$(ms)"); done
median=$(printf '%s\n' "${warm[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
read -r total symbolicated < <(curl -sf -H "$auth" --data-binary @"$work/big.dmp" "http://127.0.0.1:$p2/api/v1/minidump" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(sum(len(t["frames"]) for t in d["threads"]), sum(1 for t in d["threads"] for f in t["frames"] if f.get("function")))')
echo "| main module DWARF | threads | dump | frames (symbolicated) | cold: first crash after upload | warm (median of 15) |"
echo "| --- | --- | --- | --- | --- | --- |"
echo "| $((dwarf / 1048576)) MiB | $threads | $(($(stat -c %s "$work/big.dmp") / 1024)) KiB | ${total} (${symbolicated}) | ${cold} ms | ${median} ms |"
