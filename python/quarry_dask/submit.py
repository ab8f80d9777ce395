"""Submits one query's task graph to a Dask scheduler and reports on it.

Stdout, one line each (quarry reads it):
    done STAGE PARTITION ROWS_IN BYTES_FETCHED WORKER SECONDS
        a task finished, on Dask worker WORKER (its address), where the
        task function took SECONDS
    ok RUNS
        all finished, after RUNS runs of tasks
Any failure: `error: MESSAGE` last on stderr, exit status 1.

Cancel: quarry closes this process's stdin (Ctrl-C), or dies. Then the
query's futures are cancelled, the tasks still running on the workers are
waited for (they see the cancel within POLL_SECONDS and close their
connection, which cancels quarry's task), and the process exits with 130.

A Dask worker that dies is Dask's business: its running tasks are run
again elsewhere (the scheduler's `allowed-failures` bounds how often), and
so are finished ones whose summary it held if a consumer still needs them
(which costs nothing: see graph.run_task). A task's `failed` reply fails
the query at once, with no retry, as in a local run.
"""

import hashlib
import os
import sys
import threading
import time
import uuid

from . import byvalue, graph
from .byvalue import Function, Plugin
from .server import QuarryServer, QuarryTaskFailed

#: Seconds to wait for the scheduler to answer.
CONNECT_TIMEOUT = 10

#: Seconds to wait for a first worker, when the cluster has none.
WORKER_WAIT = 10

#: Seconds to wait, on cancel, for the running tasks to stop.
CANCEL_WAIT = 10.0


class Failure(Exception):
    """Ends the run with `error: MESSAGE`."""


def connect(scheduler):
    import logging

    from distributed import Client

    # The client's log lines (a worker lost, a key gathered again) tell
    # what Dask does about it, or repeat the error this prints: not for
    # quarry's user. (After the import: it sets up Dask's logging.)
    logging.disable(logging.WARNING)

    address = scheduler if "://" in scheduler else f"tcp://{scheduler}"
    try:
        return Client(
            address, timeout=CONNECT_TIMEOUT, set_as_default=False, name="quarry"
        )
    except (OSError, TimeoutError) as e:
        raise Failure(f"cannot reach the Dask scheduler at {address}: {e}") from None


def wait_for_workers(client, scheduler):
    """A scheduler without workers would hold the query for ever."""
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except TimeoutError:
        raise Failure(
            f"the Dask scheduler at {scheduler} has no workers "
            f"(none joined in {WORKER_WAIT} s: start some with `dask worker`)"
        ) from None


def plugin_name(program, memory_limit):
    digest = hashlib.sha1(f"{program}\0{memory_limit}".encode()).hexdigest()[:12]
    return f"quarry-server-{digest}"


def ensure_plugin(client, program, memory_limit):
    """Registers the plugin that runs quarry beside each worker (once per
    program and limit: the workers keep it, and new workers get it)."""
    name = plugin_name(program, memory_limit)
    try:
        client.register_plugin(Plugin(QuarryServer(program, memory_limit)), name=name)
    except Exception as e:
        # Unregistered, so that the next query tries again (and says why).
        try:
            client.unregister_worker_plugin(name)
        except Exception:
            pass
        raise Failure(f"quarry did not start on the Dask workers: {e}") from None
    return name


def _executing(dask_worker, prefix):
    """The query's tasks a worker still runs (cancelled ones included)."""
    return [
        str(ts.key)
        for ts in list(dask_worker.state.executing) + list(dask_worker.state.long_running)
        if prefix in str(ts.key)
    ]


def cancel(client, futures, prefix):
    """Cancels the query's futures and waits, a while, for its tasks to stop."""
    try:
        client.cancel(futures)
        deadline = time.monotonic() + CANCEL_WAIT
        while time.monotonic() < deadline:
            running = client.run(Function(_executing), prefix=prefix, on_error="return")
            if not any(isinstance(v, list) and v for v in running.values()):
                return
            time.sleep(0.1)
    except Exception as e:
        print(f"quarry_dask: while cancelling: {e}", file=sys.stderr)


def run(scheduler, exchange, program, memory_limit=None, stdin=None, out=None):
    """Runs the query in `exchange`, reporting on `out` (stdout); returns
    the exit status. End of file on `stdin` cancels the query."""
    # The workers do not have this package: its code goes with the tasks.
    byvalue.register()
    out = out or sys.stdout
    exchange = os.path.abspath(exchange)
    stages = graph.read_stages(os.path.join(exchange, "stages.json"))
    os.makedirs(os.path.join(exchange, graph.RUNS_DIR), exist_ok=True)
    client = connect(scheduler)
    try:
        wait_for_workers(client, scheduler)
        name = ensure_plugin(client, program, memory_limit)
        prefix = f"quarry-query-{uuid.uuid4().hex[:12]}"
        dsk, keys, last = graph.build_graph(stages, exchange, name, prefix)
        if last is not None:
            _submit(client, dsk, keys, prefix, stdin, out)
        print(f"ok {graph.count_runs(exchange)}", file=out, flush=True)
        return 0
    finally:
        client.close()


def _submit(client, dsk, keys, prefix, stdin, out):
    """Submits the graph and reports each task as it finishes."""
    from distributed import as_completed

    # Every key is asked for, barriers too, and a cancel names only the
    # keys not yet finished (and released): Dask's scheduler fails on a
    # cancel that reaches a key no client wants.
    futures = client.get(dsk, keys, sync=False)
    pending = set(futures)
    lock = threading.Lock()

    def unfinished():
        with lock:
            return list(pending)

    cancelling = threading.Event()

    def watch_stdin():
        try:
            while stdin.read(4096):
                pass
        except (OSError, ValueError):
            pass
        cancelling.set()
        cancel(client, unfinished(), prefix)
        os._exit(130)

    if stdin is not None:
        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        for future in as_completed(futures, loop=client.loop):
            exc = future.exception()
            if exc is not None:
                raise Failure(_describe(exc))
            result = future.result()
            if "partition" in result:
                print(
                    f"done {result['stage']} {result['partition']} "
                    f"{result['rows_in']} {result['bytes_fetched']} "
                    f"{result['worker']} {result['seconds']:.6f}",
                    file=out,
                    flush=True,
                )
            # What Dask holds of a finished task goes: nothing to compute
            # again when the worker holding it is lost.
            with lock:
                pending.discard(future)
            future.release()
    except BaseException:
        if not cancelling.is_set():
            client.cancel(unfinished())
            raise
    if cancelling.is_set():
        # the watcher cancels the tasks and ends the process
        time.sleep(CANCEL_WAIT + 5)


def _describe(exc):
    # (compared by name: the class came back by value from a worker)
    if type(exc).__name__ == QuarryTaskFailed.__name__:
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"on Dask: {type(exc).__name__}: {text}"
