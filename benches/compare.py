#!/usr/bin/env python3
"""faultline against minidump-stackwalk 0.27, on the ../shared fixture dumps that have Breakpad
.sym symbols, plus server throughput and raw-symbolication latency. Prints one table per part.

Usage: python3 benches/compare.py [offline] [throughput] [latency] [sessions]   (default: all four; builds
the release binary, about 22 minutes from clean on 2 cores (fat LTO, one codegen unit); installs
minidump-stackwalk 0.27 into target/mdsw on first use; then takes a few minutes;
COMPARE_PROFILE=bench builds without LTO, for comparing two versions of the server;
COMPARE_PROFILE=release-debug keeps debug info, for `perf record` on the server under load)

1. Offline: `minidump-stackwalk --json DUMP SYMS` against `faultline process --json DUMP`,
   cold (`--symbols DIR`: identify the files the dump needs and build their caches in memory,
   every run) and from a store the symbols were uploaded to (`faultline process` reads cached
   SymCache/CFI), wall time per run (median of N) and peak RSS; and the warm run's start-up
   (its wall time less the processing time it reports).
2. Server, warm caches: dumps processed per second through `POST /api/v1/minidump` on this
   machine (benches/load.rs, 32 keep-alive connections), against running minidump-stackwalk once
   per dump with 2 processes always running, as Socorro does.
3. Raw-frame symbolication: `POST /api/v1/symbolicate` with 100 frames, p50 / p99 over 2000
   requests on one keep-alive connection, from Python's http.client (whose own time, ~0.1 ms a
   request, is included) and from benches/load.rs (the server's latency).
4. Sessions beside crashes: the throughput of part 2 again while session updates stream in
   (benches/load.rs --sessions: envelopes of 10 `session` items from 32 keep-alive connections,
   paced at SESSION_RATE updates/s, each answer awaited: committed), against part 2's figure
   without them; with the mean crash-index commit in each phase and how long a session batch
   held its transaction (from /metrics).
"""

import concurrent.futures
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures"))
# The cargo profile the server and the load generator are built with, and the folder it builds
# into (the bench profile shares release's).
PROFILE = os.environ.get("COMPARE_PROFILE", "release")
PROFILE_DIR = "release" if PROFILE in ("release", "bench") else PROFILE
# COMPARE_SERVER=PATH runs that faultline binary instead (an earlier version, built apart).
FL = os.environ.get("COMPARE_SERVER") or os.path.join(ROOT, "target", PROFILE_DIR, "faultline")
# The load generator (benches/load.rs) run through cargo, in the same profile as the server;
# COMPARE_LOAD=PATH runs that binary instead (built once with `cargo bench --bench load
# --no-run`, so editing the tree between alternating runs does not rebuild it in each).
LOAD = ["cargo", "bench", "--quiet", "--profile", "bench" if PROFILE == "release" else PROFILE, "--bench", "load"]
# How to run it: its arguments follow.
LOAD_RUN = [os.environ["COMPARE_LOAD"]] if os.environ.get("COMPARE_LOAD") else [*LOAD, "--"]
MDSW = os.path.join(ROOT, "target", "mdsw", "bin", "minidump-stackwalk")
RUNS = 7
CONNECTIONS = 32  # concurrent uploads to the server, as during a crash spike
SW_PROCESSES = 2  # minidump-stackwalk processes at once: one per core
SESSION_RATE = 5000  # session updates per second beside the crashes (part 4)


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of one run of cmd."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024.0


def median_run(cmd):
    results = [timed(cmd) for _ in range(RUNS)]
    return statistics.median(r[0] for r in results) * 1000, max(r[1] for r in results)


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timing_totals(port, name):
    """The server's `/metrics` sum and count of the timing `name` so far (seconds, events)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/metrics", headers={"authorization": f"Bearer {TOKEN[0]}"})
    text = conn.getresponse().read().decode()
    conn.close()
    totals = {}
    for line in text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"{name}_{part} "):
                totals[part] = float(line.split()[1])
    return totals.get("sum", 0.0), totals.get("count", 0.0)


def mean_ms(before, after):
    """The mean of a timing between two `timing_totals`, in milliseconds."""
    events = after[1] - before[1]
    return 1000 * (after[0] - before[0]) / events if events else float("nan")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(work):
    port = free_port()
    proc = subprocess.Popen(
        [FL, "serve", "--listen", f"127.0.0.1:{port}", "--store", os.path.join(work, "store"), "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "FAULTLINE_LOG": "error"},
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            with open(os.path.join(work, "data", "admin-token")) as f:
                TOKEN[0] = f.read().strip()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


# The first-start admin token of the server under test (every scope).
TOKEN = [""]


def post(conn, path, body, headers=None):
    conn.request("POST", path, body=body, headers={"authorization": f"Bearer {TOKEN[0]}", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status} {data[:200]!r}")
    return data


def main():
    parts = set(sys.argv[1:]) or {"offline", "throughput", "latency", "sessions"}
    if parts - {"offline", "throughput", "latency", "sessions"}:
        raise SystemExit("usage: python3 benches/compare.py [offline] [throughput] [latency] [sessions]")
    # COMPARE_PROFILE=bench builds without LTO (minutes instead of 22): for comparing two
    # versions of the server with each other, not for the published ratios.
    if not os.environ.get("COMPARE_SERVER"):
        sh("cargo", "build", "--profile", PROFILE, "--quiet", cwd=ROOT)
    if not os.path.exists(MDSW):
        sh("cargo", "install", "--locked", "minidump-stackwalk@0.27.0", "--root", os.path.join(ROOT, "target", "mdsw"))
    work = tempfile.mkdtemp()
    try:
        # Both binaries run from fresh copies, as an install leaves them: how a binary came into
        # the page cache moves its start-up by up to 20 % (the linker's own output ran 0.8 ms
        # slower per dump than a copy of it; after dropping the caches, both alike).
        fl, sw_bin = os.path.join(work, "faultline"), os.path.join(work, "minidump-stackwalk")
        shutil.copy(FL, fl)
        shutil.copy(MDSW, sw_bin)
        # The Breakpad tree minidump-stackwalk reads, and the same .sym files for faultline.
        tree = os.path.join(work, "tree")
        shutil.copytree(os.path.join(FIX, "symbols", "breakpad"), tree)
        crash_dir = os.path.join(tree, "crash", "C0BCC3F19827FE653058404B2831D9E60")
        os.makedirs(crash_dir)
        shutil.copy(os.path.join(FIX, "debug-files", "linux", "crash.sym"), crash_dir)
        dumps = [
            ("test.dmp", os.path.join(FIX, "minidumps", "rust-minidump", "test.dmp")),
            ("pipeline-inlines-macos-segv.dmp", os.path.join(FIX, "minidumps", "rust-minidump", "pipeline-inlines-macos-segv.dmp")),
            ("linux-mini.dmp", os.path.join(FIX, "minidumps", "rust-minidump", "linux-mini.dmp")),
        ]

        # A store with the symbols uploaded and caches built, for the warm offline and server runs.
        server, port = start_server(work)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for dirpath, _, files in os.walk(tree):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    post(conn, f"/api/v1/symbols?name={name}", f.read())
        for _, path in dumps:  # builds every cache once
            with open(path, "rb") as f:
                post(conn, "/api/v1/minidump", f.read())

        if "offline" in parts:
            print("## 1. Offline, same .sym symbols (median of %d runs; peak RSS)" % RUNS)
            print()
            print("| dump | minidump-stackwalk | faultline --symbols (cold) | faultline, store (warm caches) | warm start-up |")
            print("| --- | --- | --- | --- | --- |")
            totals = [0.0, 0.0, 0.0]
            write_config(work)
            for name, path in dumps:
                sw = median_run([sw_bin, "--json", path, tree])
                cold = median_run([fl, "process", "--json", path, "--symbols", tree])
                warm_cmd = [fl, "--config", os.path.join(work, "config.toml"), "process", "--json", path]
                warm = median_run(warm_cmd)
                # Start-up: the warm run's wall time less the processing time it reports
                # (parse, symbols, walk), median over the same number of runs.
                processing = statistics.median(
                    json.loads(subprocess.run(warm_cmd, check=True, capture_output=True).stdout)["timings"]["total_ms"]
                    for _ in range(RUNS)
                )
                for i, r in enumerate([sw, cold, warm]):
                    totals[i] += r[0]
                print(f"| {name} | {sw[0]:.1f} ms, {sw[1]:.0f} MiB | {cold[0]:.1f} ms, {cold[1]:.0f} MiB | {warm[0]:.1f} ms, {warm[1]:.0f} MiB | {warm[0] - processing:.1f} ms |")
            print(f"| **total** | {totals[0]:.1f} ms | {totals[1]:.1f} ms | {totals[2]:.1f} ms | |")
            print()

        if "throughput" in parts:
            # 2. Throughput. The load generator is a one-thread Rust client (benches/load.rs), so it
            # takes as little as it can of the 2 cores it shares with the server.
            duration = 10.0
            paths = [p for _, p in dumps]
            server_rate, cpu_per_dump, result = crash_throughput(server, port, paths, duration)

            # minidump-stackwalk, one process per dump, SW_PROCESSES processes busy at all times.
            sw_counts = []

            def stackwalk_loop(worker):
                done, i = 0, worker
                end = time.perf_counter() + duration
                started = time.perf_counter()
                while time.perf_counter() < end:
                    subprocess.run([sw_bin, "--json", paths[i % len(paths)], tree], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                    done, i = done + 1, i + 1
                sw_counts.append(done / (time.perf_counter() - started))

            with concurrent.futures.ThreadPoolExecutor(SW_PROCESSES) as pool:
                list(pool.map(stackwalk_loop, range(SW_PROCESSES)))
            sw_rate = sum(sw_counts)
            print("## 2. Server throughput, warm caches (2 cores, %d connections, %.0f s)" % (CONNECTIONS, duration))
            print()
            print("| | dumps / s |")
            print("| --- | --- |")
            print(f"| minidump-stackwalk, one process per dump ({SW_PROCESSES} always running) | {sw_rate:.1f} |")
            print(f"| faultline `POST /api/v1/minidump` (process + classify + group + index + store payload) | {server_rate:.1f} |")
            print(f"| ratio | {server_rate / sw_rate:.1f}x |")
            print()
            print(f"Server CPU per dump: {cpu_per_dump * 1000:.2f} ms ({2 / cpu_per_dump:.0f} dumps/s if the 2 cores were the server's alone,")
            print(f"{2 / cpu_per_dump / sw_rate:.1f}x minidump-stackwalk); the load generator used {result['client_cpu_ms_per_request']:.2f} ms of CPU per request.")
            print()

        if "sessions" in parts:
            duration = 10.0
            paths = [p for _, p in dumps]
            index = "faultline_index_batch_seconds"
            held = "faultline_session_transaction_seconds"
            marks = [timing_totals(port, index)]
            alone, cpu_per_dump, load = crash_throughput(server, port, paths, duration)
            marks.append(timing_totals(port, index))
            # The session load alone: the server's CPU per update, and the senders' own.
            sessions_alone = session_load(server, port, 5.0, None)
            # Both at once.
            held_before = timing_totals(port, held)
            marks.append(timing_totals(port, index))
            beside = session_load(server, port, duration + 2, lambda: crash_throughput(server, port, paths, duration))
            marks.append(timing_totals(port, index))
            held_beside = mean_ms(held_before, timing_totals(port, held))
            rate_beside = beside["crashes"][0]
            server_per_update = sessions_alone["server_cpu"] / sessions_alone["updates"]
            sender_per_update = sessions_alone["sender_cpu"] / sessions_alone["updates"]
            per_dump = cpu_per_dump + load["client_cpu_ms_per_request"] / 1000
            lost = (alone - rate_beside) * duration * per_dump
            session_cpu = beside["updates"] * duration / (duration + 2) * (server_per_update + sender_per_update)
            print("## 4. Crash throughput with session updates streaming in (%.0f s)" % duration)
            print()
            print("| | dumps / s | session updates / s committed |")
            print("| --- | --- | --- |")
            print(f"| crashes alone | {alone:.1f} | |")
            print(f"| session updates alone (paced at {SESSION_RATE}/s) | | {sessions_alone['updates'] / 5.0:.0f} |")
            print(f"| crashes with sessions beside | {rate_beside:.1f} | {beside['updates'] / (duration + 2):.0f} |")
            print(f"| change | {100 * (rate_beside - alone) / alone:+.1f} % | |")
            print()
            print(f"CPU per session update: the server {server_per_update * 1e6:.0f} µs, the sender "
                  f"{sender_per_update * 1e6:.0f} µs. CPU per dump: the server {cpu_per_dump * 1000:.3f} ms, the load "
                  f"generator {load['client_cpu_ms_per_request']:.3f} ms. Over the {duration:.0f} s, the crashes lost "
                  f"{lost:.2f} CPU-seconds of work; the session load (server and senders) used {session_cpu:.2f}: "
                  f"{session_cpu * server_per_update / (server_per_update + sender_per_update):.2f} of it the server's.")
            print(f"A crash-index commit took {mean_ms(marks[0], marks[1]):.2f} ms on average alone and "
                  f"{mean_ms(marks[2], marks[3]):.2f} ms beside the sessions (waiting for the connection "
                  f"included); a session batch held its transaction {held_beside:.2f} ms.")
            print()

        if "latency" in parts:
            # 3. Raw symbolication latency. A new connection: the server rightly closes one left
            # idle while the other parts ran.
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port)
            with open(os.path.join(FIX, "debug-files", "windows", "CrashWithException.pdb"), "rb") as f:
                post(conn, "/api/v1/symbols?name=CrashWithException.pdb", f.read())
            frames = [{"instruction_addr": hex(0x140001000 + (i * 0x13) % 0x1C0)} for i in range(100)]
            request = json.dumps({
                "stacktraces": [{"frames": frames}],
                "modules": [{"type": "pe", "debug_id": "F535C5FB2AE84BB8AA206C30BE566C5A1", "image_addr": "0x140000000", "image_size": 36864}],
            }).encode()
            latencies = []
            for i in range(2200):
                start = time.perf_counter()
                post(conn, "/api/v1/symbolicate", request, {"content-type": "application/json"})
                if i >= 200:  # warm-up
                    latencies.append((time.perf_counter() - start) * 1000)
            latencies.sort()
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[int(len(latencies) * 0.99)]
            # The same requests from benches/load.rs: the server's latency without Python's.
            request_file = os.path.join(work, "symbolicate.json")
            with open(request_file, "wb") as f:
                f.write(request)
            load = subprocess.run(
                [*LOAD_RUN, "--url", f"http://127.0.0.1:{port}/api/v1/symbolicate", "--connections", "1",
                 "--latency", "2000", "--warmup", "200", "--token", TOKEN[0], request_file],
                cwd=ROOT, check=True, capture_output=True, text=True,
            )
            rust = json.loads(load.stdout.strip().splitlines()[-1])
            print("## 3. Raw-frame symbolication, 100 frames per request (2000 requests, one connection)")
            print()
            print("| client | p50 | p99 |")
            print("| --- | --- | --- |")
            print(f"| Python's http.client (its own time included) | {p50:.2f} ms | {p99:.2f} ms |")
            print(f"| benches/load.rs | {rust['p50_ms']:.2f} ms | {rust['p99_ms']:.2f} ms |")
        server.terminate()
        server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def crash_throughput(server, port, paths, duration):
    """Dumps processed per second through the server (benches/load.rs), its CPU per dump, and
    the load generator's report."""
    cpu_before = cpu_seconds(server.pid)
    load = subprocess.run(
        [*LOAD_RUN, "--url", f"http://127.0.0.1:{port}/api/v1/minidump",
         "--seconds", str(duration), "--connections", str(CONNECTIONS), "--token", TOKEN[0], *paths],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result = json.loads(load.stdout.strip().splitlines()[-1])
    return result["rate"], (cpu_seconds(server.pid) - cpu_before) / result["requests"], result


def session_load(server, port, seconds, beside):
    """Session updates paced at SESSION_RATE (benches/load.rs --sessions: envelopes of 10, from 32
    connections (each answer waits for the writer's group commit), one thread) for `seconds`, with `beside()` run meanwhile (after a second);
    updates committed, the server's and the sender's CPU seconds, and what `beside` returned."""
    server_before = cpu_seconds(server.pid)
    sender = subprocess.Popen(
        [*LOAD_RUN, "--url", f"http://127.0.0.1:{port}/api/1/envelope/", "--sessions",
         "--rate", str(SESSION_RATE / 10), "--connections", "32", "--seconds", str(seconds)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    crashes = None
    if beside:
        time.sleep(1)  # the session load running before the crashes start
        crashes = beside()
    out, _ = sender.communicate()
    if sender.returncode != 0:
        raise SystemExit("the session sender failed")
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "updates": result["requests"] * 10,
        "server_cpu": cpu_seconds(server.pid) - server_before,
        "sender_cpu": result["client_cpu_ms_per_request"] * result["requests"] / 1000,
        "crashes": crashes,
    }


def write_config(work):
    with open(os.path.join(work, "config.toml"), "w") as f:
        f.write(f'[storage]\nroot = "{os.path.join(work, "store")}"\ndata_dir = "{os.path.join(work, "offline-data")}"\n')


if __name__ == "__main__":
    sys.exit(main())
