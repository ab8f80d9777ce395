"""quarry's stage list turned into a Dask graph.

quarry writes `<exchange>/stages.json`:
`{"version":1,"stages":[{"id":0,"partitions":3,"inputs":[]}, …]}`, stages
in an order where each comes after those it reads; the last is the output.

The Dask graph has one key per task, `(NAME-s<stage>, partition)`, and one
barrier key per stage, `NAME-b<stage>`, that depends on the stage's tasks.
A task depends on the barriers of the stages it reads, not on their tasks:
a stage of m tasks reading one of n has m + n edges, not m x n. The data
itself never goes through Dask: tasks leave it in the exchange directory,
and what Dask keeps of a task is its small summary.
"""

import json
import os
import time
import uuid

from . import STAGES_VERSION
from .byvalue import Function


class StagesError(ValueError):
    """stages.json is not what this package reads."""


def read_stages(path):
    """The stages of `path` as dicts with id, partitions and inputs, checked."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise StagesError(f"cannot read the stage list '{path}': {e}") from None
    return parse_stages(doc)


def parse_stages(doc):
    if not isinstance(doc, dict) or doc.get("version") != STAGES_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise StagesError(
            f"stage list version {version!r}, this quarry_dask reads {STAGES_VERSION} "
            "(the quarry binary and its Python files must be the same build)"
        )
    stages = doc.get("stages")
    if not isinstance(stages, list):
        raise StagesError("the stage list has no 'stages' list")
    seen = set()
    out = []
    for i, s in enumerate(stages):
        try:
            sid, parts, inputs = s["id"], s["partitions"], list(s["inputs"])
        except (TypeError, KeyError) as e:
            raise StagesError(f"stage {i} of the stage list lacks {e}") from None
        if not all(isinstance(v, int) and v >= 0 for v in [sid, parts, *inputs]):
            raise StagesError(f"stage {i} of the stage list: ids and counts must be integers")
        if sid in seen:
            raise StagesError(f"stage {sid} is twice in the stage list")
        missing = [x for x in inputs if x not in seen]
        if missing:
            raise StagesError(f"stage {sid} reads stage {missing[0]}, which does not come before it")
        seen.add(sid)
        out.append({"id": sid, "partitions": parts, "inputs": inputs})
    return out


def task_name(name, stage):
    return f"{name}-s{stage}"


def barrier_key(name, stage):
    return f"{name}-b{stage}"


def build_graph(stages, exchange, plugin_name, name, run=None, barrier=None):
    """The Dask graph of `stages`: (graph, every key, the last barrier key).

    `name` prefixes every key (unique per query); `run` and `barrier` are
    the task functions (those below, sent by value, unless a test gives
    others).
    """
    run = run or Function(run_task)
    barrier = barrier or Function(stage_barrier)
    dsk = {}
    all_keys = []
    for s in stages:
        inputs = [barrier_key(name, i) for i in s["inputs"]]
        keys = [(task_name(name, s["id"]), p) for p in range(s["partitions"])]
        for key in keys:
            dsk[key] = (run, plugin_name, exchange, s["id"], key[1], *inputs)
        dsk[barrier_key(name, s["id"])] = (barrier, s["id"], keys)
        all_keys.extend(keys)
        all_keys.append(barrier_key(name, s["id"]))
    last = barrier_key(name, stages[-1]["id"]) if stages else None
    return dsk, all_keys, last


# ------------------------------------------------------------ on the workers
#
# These run on the Dask workers (sent by value, see byvalue: the workers
# need not have this package).


def stage_barrier(stage, summaries):
    """Done when every task of `stage` is: what its consumers wait for."""
    return {"stage": stage, "tasks": len(summaries)}


#: Seconds a task waits for the plugin on a Dask worker that has just
#: started (plugins are set up right after the worker registers).
PLUGIN_WAIT = 30.0


def run_task(plugin_name, exchange, stage, partition, *_barriers):
    """Runs one quarry task on the quarry worker beside this Dask worker."""
    from distributed import get_worker
    from distributed.worker import thread_state

    started = time.monotonic()
    worker = get_worker()
    deadline = started + PLUGIN_WAIT
    while (plugin := worker.plugins.get(plugin_name)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Dask worker {worker.address} has no plugin {plugin_name}")
        time.sleep(0.05)
    # Dask runs a finished task again when the worker that held its summary
    # is lost and a consumer still needs it; its output is on the shared
    # disk already, and the manifest is only ever put in place whole, so
    # the task is done.
    manifest = manifest_path(exchange, stage, partition)
    if os.path.exists(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                return summary(json.load(f), worker.address, started, reused=True)
        except (OSError, ValueError):
            pass  # run it again, which replaces the manifest
    note_run(exchange, stage, partition)
    key = thread_state.key

    def cancelled():
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state == "cancelled"

    manifest = plugin.run(exchange, stage, partition, cancelled)
    return summary(manifest, worker.address, started, reused=False)


def manifest_path(exchange, stage, partition):
    """Where quarry puts a finished task's manifest (crates/quarry-core/src/cluster/exchange.rs)."""
    return os.path.join(exchange, f"s{stage}", f"t{partition}.json")


#: Where each run of a task (not a reuse of its manifest) leaves an empty
#: file: more files than tasks means Dask ran some again (a worker died
#: while running them).
RUNS_DIR = "dask-runs"


def note_run(exchange, stage, partition):
    path = os.path.join(exchange, RUNS_DIR, f"s{stage}-t{partition}-{uuid.uuid4().hex}")
    try:
        open(path, "x").close()
    except OSError:
        pass  # only a count for the report


def count_runs(exchange):
    try:
        return len(os.listdir(os.path.join(exchange, RUNS_DIR)))
    except OSError:
        return 0


def summary(manifest, worker, started, reused):
    """What Dask keeps of a task: its figures, the Dask worker that ran it,
    and how long the task function took there (quarry's task, and the
    way to it and back)."""
    return {
        "stage": manifest.get("stage"),
        "partition": manifest.get("partition"),
        "rows_in": manifest.get("rows_in", 0),
        "bytes_fetched": manifest.get("bytes_fetched", 0),
        "worker": worker,
        "seconds": time.monotonic() - started,
        "reused": reused,
    }
