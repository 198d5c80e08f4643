#!/usr/bin/env python3
"""What alert rules cost the crash path: dumps per second through `POST /api/v1/minidump` and
server CPU per dump with no rules, with typical rules (new group, regression, more than 1000
events an hour, a spike; 30-minute interval), and with a worst case (every crash fires, no
interval, every firing delivered as a signed webhook to a local receiver).

Usage: python3 benches/alerts.py   (builds the release binary and benches/load.rs; 2 cores:
the server, the load generator and the receiver share them). Prints a Markdown table."""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port  # noqa: E402  (one helper for both benchmarks)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FL = os.path.join(ROOT, "target", "release", "faultline")
DUMPS = [os.path.join(ROOT, "fixtures", "minidumps", n) for n in ("null-read.dmp", "wild-write.dmp", "abort.dmp")]
SECONDS = 10.0
CONNECTIONS = 32


class Receiver(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        Receiver.received += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "bench", "--quiet", "--bench", "load", "--no-run"], cwd=ROOT, check=True,
                   capture_output=True)
    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 256  # the default backlog of 5 drops connections under load
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a sender that timed out and hung up is counted by the server, not here

    receiver = Server(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp()
    port = free_port()
    server = subprocess.Popen(
        [FL, "serve", "--listen", f"127.0.0.1:{port}", "--store", os.path.join(work, "store"),
         "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "FAULTLINE_LOG": "error"},
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        token = open(os.path.join(work, "data", "admin-token")).read().strip()

        def post(path, body):
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("POST", path, body=json.dumps(body),
                         headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
            response = conn.getresponse()
            data = json.loads(response.read() or b"null")
            if response.status not in (200, 201):
                raise SystemExit(f"{path}: {response.status} {data}")
            return data

        def measure():
            before = cpu_seconds(server.pid)
            load = subprocess.run(
                ["cargo", "bench", "--quiet", "--bench", "load", "--", "--url",
                 f"http://127.0.0.1:{port}/api/v1/minidump", "--seconds", str(SECONDS),
                 "--connections", str(CONNECTIONS), "--token", token, *DUMPS],
                cwd=ROOT, check=True, capture_output=True, text=True)
            result = json.loads(load.stdout.strip().splitlines()[-1])
            return result["rate"], (cpu_seconds(server.pid) - before) / result["requests"] * 1000

        channel = post("/api/v1/channels", {"name": "bench", "config": {
            "kind": "webhook", "url": f"http://127.0.0.1:{receiver.server_address[1]}/",
            "secret": "benchmark-secret-0123456789"}})["id"]
        rows = [("no rules", *measure())]
        for name, triggers in [("new group", [{"kind": "new_group"}]),
                               ("regression", [{"kind": "regression"}]),
                               ("events", [{"kind": "events", "count": 1000, "window_secs": 3600}]),
                               ("spike", [{"kind": "spike", "factor": 3.0, "window_secs": 3600, "min_events": 1000000}])]:
            post("/api/v1/alert-rules", {"name": name, "triggers": triggers, "actions": [{"channel": channel}]})
        time.sleep(2.5)  # every node reads rules again within 2 s
        rows.append(("4 typical rules (one counting on every crash)", *measure()))
        post("/api/v1/alert-rules", {"name": "all", "triggers": [{"kind": "every_crash"}],
                                     "actions": [{"channel": channel}], "interval_secs": 0})
        time.sleep(2.5)
        sent_before = Receiver.received
        rows.append(("+ every crash fires and is delivered (worst case)", *measure()))
        delivered = Receiver.received - sent_before

        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", path, headers={"authorization": f"Bearer {token}"})
            return json.loads(conn.getresponse().read())

        # After the flood: how long the outbox takes to empty.
        flood_end = time.time()
        while get("/api/v1/deliveries?state=pending&limit=1")["deliveries"] and time.time() - flood_end < 600:
            time.sleep(0.5)
        drain_secs = time.time() - flood_end
        total = Receiver.received - sent_before
        print("| rules | dumps/s | server CPU per dump |")
        print("| --- | --- | --- |")
        for name, rate, cpu in rows:
            print(f"| {name} | {rate:.0f} | {cpu:.2f} ms |")
        print()
        print(f"worst case: {delivered} webhooks received during the 10 s flood; the outbox was empty "
              f"{drain_secs:.1f} s after it ({total} webhooks in all, {total / (SECONDS + drain_secs):.0f}/s overall)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
