"""`quarry worker serve` beside each Dask worker, and the tasks' way to it.

A Dask worker runs Python; quarry's tasks are native code with their own
memory budget and spilling. So each Dask worker gets one quarry worker
process (started by the plugin below when the worker starts or when the
plugin is registered), and a Dask task is a thin call: it sends
`{"exchange":…,"stage":…,"partition":…}` over TCP and waits for the
reply (the protocol is documented at the top of crates/quarry-core/src/cluster/worker.rs).
Each of the Dask worker's threads keeps one connection, as quarry's own
driver does.

The quarry process dies with its Dask worker however that ends: it is
started with `--exit-on-stdin-eof` and this process holds its stdin, which
the kernel closes when the Dask worker dies (even by SIGKILL).
"""

import json
import os
import select
import socket
import subprocess
import threading
import time

from . import LISTENING, PROTOCOL
from .byvalue import WorkerPlugin


class QuarryTaskFailed(Exception):
    """The task itself failed (a `failed` reply): so does the query, no retry."""


class QuarryWorkerLost(Exception):
    """The quarry process beside this Dask worker could not be reached."""


class TaskCancelled(Exception):
    """Dask cancelled the task while quarry ran it (the query was cancelled)."""


#: Seconds a quarry worker may take to print its address.
START_TIMEOUT = 30.0

#: How often a task waiting for its reply looks whether Dask cancelled it.
POLL_SECONDS = 0.1


def server_args(program, nthreads, memory_limit, temp_dir):
    """The command line of the quarry worker beside a Dask worker."""
    args = [
        program,
        "worker",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        str(max(1, int(nthreads))),
        "--temp-dir",
        temp_dir,
        "--exit-on-stdin-eof",
    ]
    if memory_limit:
        args += ["--memory-limit", str(memory_limit)]
    return args


def _read_first_line(process, timeout):
    """The first line `process` prints, or None when it exits or is silent."""
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace")


def _drain(stream):
    # quarry prints nothing more on stdout; read it anyway so that the
    # pipe can never fill and block it
    try:
        while stream.read(65536):
            pass
    except (OSError, ValueError):
        pass




class QuarryServer(WorkerPlugin):
    """Runs `PROGRAM worker serve` beside the Dask worker it is set up on.

    `program` is the quarry binary's path on the workers; `memory_limit`
    the quarry worker's budget (None: the Dask worker's own memory limit,
    which its process barely uses while quarry's tasks run).
    """

    # Registering it again under the same name changes nothing (the name
    # says which program and limit it runs): no restart per query.
    idempotent = True

    def __init__(self, program, memory_limit=None):
        self.program = program
        self.memory_limit = memory_limit
        self.process = None
        self.address = None

    # ---------------------------------------------------------- lifecycle

    def setup(self, worker):
        self._worker = worker
        self._lock = threading.Lock()
        self._local = threading.local()
        self._start()

    def teardown(self, worker):
        self._stop()

    def _start(self):
        worker = self._worker
        memory = self.memory_limit or worker.memory_manager.memory_limit
        temp_dir = os.path.join(worker.local_directory, "quarry")
        os.makedirs(temp_dir, exist_ok=True)
        args = server_args(self.program, worker.state.nthreads, memory, temp_dir)
        try:
            process = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
            )
        except OSError as e:
            raise QuarryWorkerLost(
                f"cannot start '{self.program} worker serve' beside Dask worker "
                f"{worker.address}: {e} (QUARRY_WORKER_PROGRAM names quarry's path on the workers)"
            ) from None
        line = _read_first_line(process, START_TIMEOUT)
        if line is None or not line.startswith(LISTENING):
            process.kill()
            process.wait()
            raise QuarryWorkerLost(
                f"'{self.program} worker serve' did not start beside Dask worker "
                f"{worker.address} (exit status {process.returncode}; it said {line!r})"
            )
        threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        self.process = process
        self.address = line[len(LISTENING) :].strip()

    def _stop(self):
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()  # it exits at end of file
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def _alive_address(self):
        """The quarry worker's address, started again if it died."""
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                self._stop()
                self._start()
            return self.address

    # -------------------------------------------------------------- tasks

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self._alive_address())
            self._local.conn = conn
        return conn

    def _drop_connection(self):
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def run(self, exchange, stage, partition, cancelled=lambda: False):
        """Runs task (stage, partition) of the query in `exchange`: its manifest.

        A lost connection (quarry's process died, say) is tried once more,
        on a quarry worker started again if need be; a `failed` reply is
        the task's own error and raises QuarryTaskFailed.
        """
        request = {"exchange": exchange, "stage": stage, "partition": partition}
        why = None
        for _attempt in range(2):
            try:
                reply = self._connection().ask(request, cancelled)
            except TaskCancelled:
                self._drop_connection()  # quarry takes the closed connection as a cancel
                raise
            except (OSError, QuarryWorkerLost) as e:
                self._drop_connection()
                why = e
                continue
            if "done" in reply:
                return reply["done"]
            if "failed" in reply:
                raise QuarryTaskFailed(reply["failed"])
            raise QuarryWorkerLost(f"unexpected reply from the quarry worker: {reply!r}")
        raise QuarryWorkerLost(
            f"the quarry worker beside Dask worker {self._worker.address} was lost: {why}"
        )


class Connection:
    """One connection to a quarry worker: one request at a time."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.address = address
        self.sock = socket.create_connection((host, int(port)), timeout=START_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        hello = self._read_line(lambda: False)
        if hello.get("quarry_worker") != PROTOCOL:
            self.close()
            raise QuarryWorkerLost(
                f"{address} speaks protocol {hello.get('quarry_worker')!r}, not {PROTOCOL}"
            )
        self.hello = hello

    def ask(self, request, cancelled):
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        return self._read_line(cancelled)

    def _read_line(self, cancelled):
        # a short timeout, to look now and then whether Dask cancelled the task
        self.sock.settimeout(POLL_SECONDS)
        while b"\n" not in self.buffer:
            if cancelled():
                raise TaskCancelled("cancelled")
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise QuarryWorkerLost(f"{self.address} closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise QuarryWorkerLost(f"{self.address} sent {line[:200]!r}") from None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
