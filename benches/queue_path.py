#!/usr/bin/env python3
"""The queue path against the synchronous path, on SQLite and on Postgres. Prints one table.

Usage: python3 benches/queue_path.py [sqlite] [postgres]   (default: both; builds the release binary;
about two minutes per database; Postgres is a throwaway cluster started here with initdb +
pg_ctl, as the `postgres` user when run as root, with its default durability settings;
COMPARE_PROFILE as in compare.py)

Every phase uses the ../shared dumps that have Breakpad .sym symbols (uploaded first, caches
warm), on a fresh server:

1. sync: `POST /api/v1/minidump` as fast as 32 connections can (process, classify, group,
   index, store the payload, answer): dumps per second.
2. drain: a receive-only node (`ingest.process_crashes = false`) stores and queues crashes sent
   to `/submit` for a few seconds; then a processing node on the same folders drains the
   backlog: crashes per second (measured from its first scrape to an empty queue).
3. mixed: `/submit` as fast as 32 connections can while the node processes, twice: from an
   empty queue (processing can only keep up with what arrives), and from a backlog left by a
   receive-only node (processing always has work: this is the spike, where processing must
   keep at least a third of the machine). Crashes accepted and processed per second during
   the load; processing's share is processed / drain rate.
4. paced: `/submit` at 500 crashes per second for 20 s: accepted → processed latency,
   p50 / p99 from the server's `faultline_ingest_end_to_end_seconds` summary.

Each phase's folders are deleted when the run ends, not before the next phase: for 30 s after
files are deleted, ext4 looks past their inodes for every new file (`recently_deleted`), and a
phase started right after the previous one's deletion spent most of its receiving CPU there.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from compare import FL, LOAD, LOAD_RUN, PROFILE, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.abspath(os.path.join(ROOT, "..", "shared", "fixtures"))
CONNECTIONS = 32
DUMPS = [
    os.path.join(FIX, "minidumps", "rust-minidump", "test.dmp"),
    os.path.join(FIX, "minidumps", "rust-minidump", "pipeline-inlines-macos-segv.dmp"),
    os.path.join(FIX, "minidumps", "rust-minidump", "linux-mini.dmp"),
]


class Server:
    """`faultline serve` on `work`'s folders with extra environment."""

    def __init__(self, work, env):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [FL, "serve", "--listen", f"127.0.0.1:{self.port}", "--store", os.path.join(work, "store"),
             "--data-dir", os.path.join(work, "data")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "FAULTLINE_LOG": "error", **env},
        )
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("server did not start")
        with open(os.path.join(work, "data", "admin-token")) as f:
            self.token = f.read().strip()

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, path, body=body, headers={"authorization": f"Bearer {self.token}"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status} {data[:200]!r}")
        return data

    def metrics(self):
        values = {}
        for line in self.request("GET", "/metrics").decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def processed(self):
        return self.metrics().get('faultline_ingest_processed_total{outcome="processed"}', 0.0)

    def backlog(self):
        m = self.metrics()
        return m.get('faultline_ingest_queue{state="queued"}', 0.0) + m.get('faultline_ingest_queue{state="processing"}', 0.0)

    def load(self, path, seconds, form=False, rate=None):
        args = [*LOAD_RUN, "--url", f"http://127.0.0.1:{self.port}{path}",
                "--seconds", str(seconds), "--connections", str(CONNECTIONS), "--token", self.token]
        if form:
            args.append("--form")
        if rate:
            args += ["--rate", str(rate)]
        out = subprocess.run(args + DUMPS, cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"load generator failed: {out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_drained(self, limit=600):
        deadline = time.time() + limit
        while self.backlog() > 0:
            if time.time() > deadline:
                raise SystemExit("the queue did not drain")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def prepare(work, env):
    """A store with the symbols uploaded and every cache built."""
    server = Server(work, env)
    tree = os.path.join(FIX, "symbols", "breakpad")
    for dirpath, _, files in os.walk(tree):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                server.request("POST", f"/api/v1/symbols?name={name}", f.read())
    with open(os.path.join(FIX, "debug-files", "linux", "crash.sym"), "rb") as f:
        server.request("POST", "/api/v1/symbols?name=crash.sym", f.read())
    for path in DUMPS:
        with open(path, "rb") as f:
            server.request("POST", "/api/v1/minidump", f.read())
    return server


def as_postgres(*args, **kw):
    if os.geteuid() == 0:
        args = ("runuser", "-u", "postgres", "--", "env", f"PATH={os.environ['PATH']}") + args
    kw.setdefault("check", True)
    return subprocess.run(args, **kw)


def start_postgres(root):
    bins = sorted(d for d in os.listdir("/usr/lib/postgresql"))
    os.environ["PATH"] = f"/usr/lib/postgresql/{bins[-1]}/bin:" + os.environ["PATH"]
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    port = free_port()
    as_postgres("initdb", "-D", f"{root}/data", "-U", "postgres", "-A", "trust", "-E", "UTF8",
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    as_postgres("pg_ctl", "-D", f"{root}/data", "-l", f"{root}/log", "-w", "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start",
                stdout=subprocess.DEVNULL)
    return port


def stop_postgres(root):
    as_postgres("pg_ctl", "-D", f"{root}/data", "-m", "fast", "stop", stdout=subprocess.DEVNULL, check=False)


# Work folders of finished phases, deleted when the run ends.
FINISHED = []


def run(database, pg_port):
    rows = {}

    def fresh(name):
        work = tempfile.mkdtemp()
        env = {}
        if database == "postgres":
            db = f"b_{name}_{int(time.time() * 1000)}"
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "-qc", f"CREATE DATABASE {db}"],
                           check=True)
            env["FAULTLINE_INDEX_URL"] = f"postgres://postgres@127.0.0.1:{pg_port}/{db}"
        return work, env

    # 1. The synchronous path.
    work, env = fresh("sync")
    server = prepare(work, env)
    result = server.load("/api/v1/minidump", 10)
    rows["sync"] = result["rate"]
    server.stop()
    FINISHED.append(work)

    # 2. Draining a backlog.
    work, env = fresh("drain")
    prepare(work, env).stop()
    receiver = Server(work, {**env, "FAULTLINE_INGEST_PROCESS_CRASHES": "false"})
    accepted = receiver.load("/submit", 8, form=True)
    receiver.stop()
    server = Server(work, env)
    started, done_before = time.time(), server.processed()
    backlog = server.backlog()
    server.wait_drained()
    elapsed = time.time() - started
    drained = server.processed() - done_before
    rows["drain"] = drained / elapsed
    rows["drain_backlog"] = backlog
    rows["receive_only_rate"] = accepted["rate"]
    server.stop()
    FINISHED.append(work)

    # 3. Processing while ingest runs flat out, from an empty queue and from a backlog.
    for phase, backlog_seconds, seconds in (("mixed", 0, 10), ("spike", 8, 5)):
        work, env = fresh(phase)
        server = prepare(work, env)
        if backlog_seconds:
            server.stop()
            receiver = Server(work, {**env, "FAULTLINE_INGEST_PROCESS_CRASHES": "false"})
            receiver.load("/submit", backlog_seconds, form=True)
            receiver.stop()
            server = Server(work, env)
        before = server.processed()
        started = time.time()
        result = server.load("/submit", seconds, form=True)
        processed = server.processed() - before
        rows[f"{phase}_accepted"] = result["rate"]
        rows[f"{phase}_processed"] = processed / (time.time() - started)
        rows[f"{phase}_left"] = server.backlog()
        server.wait_drained()
        server.stop()
        FINISHED.append(work)

    # 4. 500 crashes per second, sustained.
    work, env = fresh("paced")
    server = prepare(work, env)
    result = server.load("/submit", 20, form=True, rate=500)
    rows["paced_rate"] = result["rate"]
    server.wait_drained()
    m = server.metrics()
    rows["p50"] = m.get('faultline_ingest_end_to_end_seconds{quantile="0.5"}', float("nan"))
    rows["p99"] = m.get('faultline_ingest_end_to_end_seconds{quantile="0.99"}', float("nan"))
    server.stop()
    FINISHED.append(work)
    return rows


def main():
    databases = sys.argv[1:] or ["sqlite", "postgres"]
    if set(databases) - {"sqlite", "postgres"}:
        raise SystemExit("usage: python3 benches/queue_path.py [sqlite] [postgres]")
    subprocess.run(["cargo", "build", "--profile", PROFILE, "--quiet"], cwd=ROOT, check=True)
    if not os.environ.get("COMPARE_LOAD"):
        subprocess.run([*LOAD, "--no-run"], cwd=ROOT, check=True)
    pg_root = tempfile.mkdtemp() if "postgres" in databases else None
    pg_port = start_postgres(pg_root) if pg_root else None
    try:
        results = {}
        for db in databases:
            results[db] = run(db, pg_port)
            print(f"{db}: {results[db]}", file=sys.stderr, flush=True)
    finally:
        for work in FINISHED:
            shutil.rmtree(work, ignore_errors=True)
        if pg_root:
            stop_postgres(pg_root)
            shutil.rmtree(pg_root, ignore_errors=True)
    print(f"| measure ({os.cpu_count()} cores) | " + " | ".join(databases) + " |")
    print("| --- |" + " --- |" * len(databases))
    lines = [
        ("sync: `POST /api/v1/minidump`, dumps/s", lambda r: f"{r['sync']:.0f}"),
        ("drain: queued backlog processed, crashes/s", lambda r: f"{r['drain']:.0f} ({r['drain_backlog']:.0f} queued)"),
        ("drain / sync (target ≥ 80 %)", lambda r: f"{100 * r['drain'] / r['sync']:.0f} %"),
        ("receive-only node: `/submit` accepted/s", lambda r: f"{r['receive_only_rate']:.0f}"),
        ("mixed, empty queue: accepted/s while processing", lambda r: f"{r['mixed_accepted']:.0f}"),
        ("mixed, empty queue: processed/s during that load", lambda r: f"{r['mixed_processed']:.0f}"),
        ("spike (mixed on a backlog): accepted/s", lambda r: f"{r['spike_accepted']:.0f}"),
        ("spike: processed/s during that load (backlog left)", lambda r: f"{r['spike_processed']:.0f} ({r['spike_left']:.0f})"),
        ("spike: processing's share, processed / drain (target ≥ 33 %)", lambda r: f"{100 * r['spike_processed'] / r['drain']:.0f} %"),
        ("paced: `/submit` rate sustained, crashes/s", lambda r: f"{r['paced_rate']:.0f}"),
        ("paced: accepted → processed p50 / p99 (target p99 < 1 s)", lambda r: f"{r['p50'] * 1000:.0f} ms / {r['p99'] * 1000:.0f} ms"),
    ]
    for label, cell in lines:
        print(f"| {label} | " + " | ".join(cell(results[db]) for db in databases) + " |")


if __name__ == "__main__":
    sys.exit(main())
