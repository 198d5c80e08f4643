#!/usr/bin/env python3
"""Where the server's CPU goes under load: `perf record` on a running server, its samples
attributed to the stages of a crash's path. Prints the load's figures and a tree of stages.

Usage: python3 benches/profile_server.py [sync|drain|sessions] [SECONDS]   (default: sync 6)

- sync: `POST /api/v1/minidump` from 32 connections (compare.py's throughput load).
- drain: a receive-only node queues crashes sent to `/submit` for 6 s; a processing node then
  drains the backlog while perf records it (queue_path.py's drain phase).
- sessions: Sentry envelopes of 10 session updates paced at 5,000 updates/s (compare.py's
  session load), nothing else.

Builds with COMPARE_PROFILE (default here: release-debug, which keeps the debug info perf needs
to name inlined frames; its figures are for comparing versions, not for publishing). Samples
are taken at 999 Hz with DWARF call graphs into target/profile/perf.data; the tree attributes
each sample to the stages (below) found on its stack, root first, and shows those over 0.5 %.
"""

import collections
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("COMPARE_PROFILE", "release-debug")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import queue_path  # noqa: E402

# Stages, by a piece of the mangled name of a function that marks them, most specific last.
STAGES = [
    ("handler: POST /api/v1/minidump", "9faultline3api8minidump7process"),
    ("token check", "6Caller"),
    ("body read", "read_spilling"),
    ("pipeline", "8pipeline8Pipeline3run"),
    ("parse", "8minidump8minidump17Minidump"),
    ("stack walk", "into_process_state"),
    ("processed crash assembled", "9faultline7process6finish"),
    ("variables", "9faultline9variables"),
    ("classify", "9faultline8classify"),
    ("signature", "9faultline5group9signature"),
    ("record", "8Recorder6record"),
    ("envelope", "6events8envelope"),
    ("sessions parsed", "6health7session"),
    ("sessions written", "6health6record"),
    ("users sketched", "6health5users"),
    ("crash index", "5group5index"),
    ("processed JSON", "processed_json"),
    ("object store", "9faultline5store"),
    ("ingest worker", "9faultline6ingest6worker"),
    ("serde_json", "10serde_json"),
    ("SQLite", "sqlite3"),
    ("sqlx", "sqlx"),
    ("hyper", "5hyper"),
    ("tokio", "5tokio"),
    ("allocator", "mi_"),
]
OUT = os.path.join(compare.ROOT, "target", "profile")


def record(pid):
    os.makedirs(OUT, exist_ok=True)
    return subprocess.Popen(
        ["perf", "record", "-F", "999", "--call-graph", "dwarf,32768", "-o", os.path.join(OUT, "perf.data"), "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def stop(perf):
    perf.send_signal(2)
    perf.wait()


def profile_sync(seconds, work):
    server, port = compare.start_server(work)
    tree = os.path.join(compare.FIX, "symbols", "breakpad")
    dumps = queue_path.DUMPS
    conn = compare.http.client.HTTPConnection("127.0.0.1", port)
    for dirpath, _, files in os.walk(tree):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                compare.post(conn, f"/api/v1/symbols?name={name}", f.read())
    with open(os.path.join(compare.FIX, "debug-files", "linux", "crash.sym"), "rb") as f:
        compare.post(conn, "/api/v1/symbols?name=crash.sym", f.read())
    compare.crash_throughput(server, port, dumps, 3)  # caches warm
    perf = record(server.pid)
    time.sleep(0.5)
    rate, cpu, result = compare.crash_throughput(server, port, dumps, seconds)
    stop(perf)
    server.terminate()
    server.wait()
    return f"{rate:.0f} dumps/s, server CPU {cpu * 1000:.3f} ms per dump (under perf), load generator {result['client_cpu_ms_per_request']:.3f} ms"


def profile_drain(seconds, work):
    queue_path.prepare(work, {}).stop()
    receiver = queue_path.Server(work, {"FAULTLINE_INGEST_PROCESS_CRASHES": "false"})
    accepted = receiver.load("/submit", 6, form=True)
    receiver.stop()
    server = queue_path.Server(work, {})
    perf = record(server.proc.pid)
    started, before = time.time(), server.processed()
    time.sleep(seconds)
    stop(perf)
    server.wait_drained()
    rate = (server.processed() - before) / (time.time() - started)
    server.stop()
    return f"received {accepted['rate']:.0f}/s, drained {rate:.0f}/s (perf recording for the first {seconds:.0f} s)"


def profile_sessions(seconds, work):
    server, port = compare.start_server(work)
    compare.session_load(server, port, 2, None)  # tables and statements warm
    perf = record(server.pid)
    time.sleep(0.5)
    load = compare.session_load(server, port, seconds, None)
    stop(perf)
    server.terminate()
    server.wait()
    return (f"{load['updates'] / seconds:.0f} session updates/s, server CPU "
            f"{load['server_cpu'] / load['updates'] * 1e6:.0f} µs per update (under perf)")


def stage_tree():
    script = subprocess.run(
        ["perf", "script", "-i", os.path.join(OUT, "perf.data"), "-F", "comm,ip,sym", "--no-demangle", "--no-inline"],
        capture_output=True, text=True, errors="replace", check=True,
    ).stdout
    counts, total = collections.Counter(), 0
    for sample in script.split("\n\n"):
        lines = [line.strip() for line in sample.strip().splitlines()]
        if len(lines) < 2:
            continue
        total += 1
        path = [lines[0].split()[0]]  # the thread's name
        for frame in reversed(lines[1:]):
            for name, mark in STAGES:
                if mark in frame:
                    if path[-1] != name:
                        path.append(name)
                    break
        if lines[1].split()[0].startswith("ffffffff"):
            path.append("(kernel)")
        for depth in range(1, len(path) + 1):
            counts[tuple(path[:depth])] += 1

    def show(prefix, indent):
        children = [k for k in counts if len(k) == len(prefix) + 1 and k[: len(prefix)] == prefix]
        for k in sorted(children, key=lambda k: -counts[k]):
            share = 100 * counts[k] / total
            if share >= 0.5:
                print(f"{'  ' * indent}{share:5.1f} %  {k[-1]}")
                show(k, indent + 1)

    show((), 0)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "sync"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
    modes = {"sync": profile_sync, "drain": profile_drain, "sessions": profile_sessions}
    if mode not in modes:
        raise SystemExit("usage: python3 benches/profile_server.py [sync|drain|sessions] [SECONDS]")
    if not os.environ.get("COMPARE_SERVER"):
        subprocess.run(["cargo", "build", "--profile", compare.PROFILE, "--quiet"], cwd=compare.ROOT, check=True)
    if not os.environ.get("COMPARE_LOAD"):
        subprocess.run([*compare.LOAD, "--no-run"], cwd=compare.ROOT, check=True)
    with tempfile.TemporaryDirectory() as work:
        print(modes[mode](seconds, work))
    stage_tree()


if __name__ == "__main__":
    sys.exit(main())
