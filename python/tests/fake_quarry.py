#!/usr/bin/env python3
"""Stands in for `quarry worker serve` in the package's own tests.

    fake_quarry.py worker serve --listen HOST:PORT [--exit-on-stdin-eof] [...]

It speaks the worker protocol (crates/quarry-core/src/cluster/worker.rs) but computes nothing:
a task writes the manifest quarry would (`s<stage>/t<task>.json`, rows_in
= 100 * stage + task) and logs `start S P PID` / `end S P PID` lines to
`<exchange>/fake-log`. `<exchange>/fake.json` can make tasks misbehave:
`{"fail": [[S, P]], "hang": [[S, P]], "sleep": SECONDS}` — a failed reply,
a task that waits until its connection closes (then logs `closed S P`),
or a pause before every reply.
"""

import json
import os
import socket
import sys
import threading
import time

LISTENING = "quarry worker listening on "


def log(exchange, text):
    fd = os.open(os.path.join(exchange, "fake-log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{text} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def behaviour(exchange):
    try:
        with open(os.path.join(exchange, "fake.json")) as f:
            return json.load(f)
    except OSError:
        return {}


def serve(conn):
    f = conn.makefile("rwb")
    f.write(json.dumps({"quarry_worker": 1, "threads": 1, "memory_limit": 1 << 30}).encode() + b"\n")
    f.flush()
    try:
        for line in f:
            answer(conn, f, json.loads(line))
    except (OSError, ValueError):
        pass  # the driver went


def answer(conn, f, req):
    ex, s, p = req["exchange"], req["stage"], req["partition"]
    how = behaviour(ex)
    log(ex, f"start {s} {p}")
    if [s, p] in how.get("hang", []):
        conn.settimeout(None)
        if not conn.recv(1):
            log(ex, f"closed {s} {p}")
        raise OSError("hung up")
    time.sleep(how.get("sleep", 0))
    if [s, p] in how.get("fail", []):
        reply = {"failed": f"boom at task {p} of stage {s}"}
    else:
        manifest = {
            "stage": s,
            "partition": p,
            "attempt": "fake",
            "file": None,
            "outputs": [],
            "rows_in": 100 * s + p,
            "bytes_fetched": 7,
            "spilled_bytes": 0,
            "micros": 1,
        }
        os.makedirs(os.path.join(ex, f"s{s}"), exist_ok=True)
        path = os.path.join(ex, f"s{s}", f"t{p}.json")
        with open(path + ".tmp", "w") as m:
            json.dump(manifest, m)
        os.replace(path + ".tmp", path)
        reply = {"done": manifest}
    log(ex, f"end {s} {p}")
    f.write(json.dumps(reply).encode() + b"\n")
    f.flush()


def main():
    args = sys.argv[1:]
    if args[:2] != ["worker", "serve"]:
        print("usage: fake_quarry.py worker serve --listen HOST:PORT", file=sys.stderr)
        return 2
    host, port = args[args.index("--listen") + 1].rsplit(":", 1)
    server = socket.create_server((host, int(port)))
    print(LISTENING + "%s:%d" % server.getsockname()[:2], flush=True)
    if "--exit-on-stdin-eof" in args:

        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
