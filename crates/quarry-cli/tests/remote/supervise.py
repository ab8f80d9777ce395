"""Runs a server for tests/remote.rs and ends it when the test process ends.

    python3 supervise.py COMMAND [ARG ...]

Starts COMMAND in a session (process group) of its own, then reads its own
stdin, which the test holds as a pipe: at end of file (the test dropped the
server, or the test process is gone however it ended, even killed) it
terminates the group (SIGTERM, SIGKILL after 3 s) and exits. When COMMAND
exits by itself, so does this, with its exit code. The servers (moto_server,
rclone, cut_body_server.py) have no parent-death option of their own, and a
test binary's statics are never dropped, so this is what keeps a `cargo test`
from leaving servers behind.
"""

import os
import signal
import subprocess
import sys
import threading


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: supervise.py COMMAND [ARG ...]", file=sys.stderr)
        return 2
    child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, start_new_session=True)
    stopping = threading.Event()

    def signal_group(sig: int) -> None:
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass

    def stop(*_args) -> None:
        # SIGTERM now, SIGKILL in 3 s if still there; the main thread's
        # child.wait() returns when the server is gone
        if stopping.is_set():
            return
        stopping.set()
        signal_group(signal.SIGTERM)
        timer = threading.Timer(3.0, signal_group, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=watch_stdin, daemon=True).start()
    code = child.wait()
    # whatever the server left in its group goes with it
    signal_group(signal.SIGKILL)
    if not stopping.is_set():
        print(f"supervise.py: {sys.argv[1]} exited with {code}", file=sys.stderr)
        return code if code > 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
