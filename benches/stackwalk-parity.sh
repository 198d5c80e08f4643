#!/usr/bin/env bash
# Compares `faultline process` with minidump-stackwalk 0.27 on every ../shared fixture dump,
# both given the same Breakpad symbols, and prints one table: threads, frames per thread,
# symbolicated frames and per-module symbol flags, and whether every frame is identical.
# Installs minidump-stackwalk into target/mdsw on first use.
# Usage: bash benches/stackwalk-parity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
F=../shared/fixtures
MDSW=target/mdsw/bin/minidump-stackwalk
[ -x "$MDSW" ] || cargo install --locked minidump-stackwalk@0.27.0 --root target/mdsw >&2
cargo build --release --quiet
FL=target/release/faultline
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# minidump-stackwalk reads a Breakpad tree: MODULE/DEBUGID/MODULE.sym
mkdir -p "$work/tree/crash/C0BCC3F19827FE653058404B2831D9E60" "$work/empty"
cp "$F/debug-files/linux/crash.sym" "$work/tree/crash/C0BCC3F19827FE653058404B2831D9E60/"
printf '%-44s %-8s %-10s %-14s %-8s %s\n' DUMP THREADS SYMBOLIZED "FRAMES(sw/fl)" MODULES IDENTICAL
while read -r dump symbols; do
  "$MDSW" --json "$F/minidumps/$dump" "$symbols" > "$work/sw.json" 2>/dev/null
  "$FL" process --json "$F/minidumps/$dump" --symbols "$symbols" > "$work/fl.json"
  python3 - "$dump" "$work/sw.json" "$work/fl.json" <<'PY'
import json, sys
name, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
key = lambda f: (f.get('function'), f.get('file'), f.get('line'), f.get('trust'), f.get('module_offset'), json.dumps(f.get('inlines')))
fa = [[key(f) for f in t['frames']] for t in a['threads']]
fb = [[key(f) for f in t['frames']] for t in b['threads']]
sym = lambda fs: sum(1 for t in fs for f in t if f[0])
flags = lambda d: [(m['filename'], m['loaded_symbols'], m['missing_symbols'], m['corrupt_symbols']) for m in d['modules']]
print(f"{name:<44} {len(fa)}/{len(fb):<6} {sym(fa)}/{sym(fb):<7} {sum(map(len, fa))}/{sum(map(len, fb)):<11} {'same' if flags(a) == flags(b) else 'DIFF':<8} {'yes' if fa == fb else 'NO'}")
PY
done <<LIST
rust-minidump/test.dmp $F/symbols/breakpad
rust-minidump/pipeline-inlines-macos-segv.dmp $F/symbols/breakpad
rust-minidump/linux-mini.dmp $work/tree
rust-minidump/simple-crashpad.dmp $work/empty
rust-minidump/invalid-parameter.dmp $work/empty
symbolic/crash_linux.dmp $work/empty
symbolic/crash_macos.dmp $work/empty
LIST
