"""quarry on a Dask cluster: the Python side of `quarry --cluster dask://HOST:PORT`.

quarry plans a query into a task graph (stages x partitions, joined by
exchanges) and leaves it in an exchange directory that every node shares.
This package submits that graph to a Dask scheduler:

- `server`: a Dask WorkerPlugin that runs `quarry worker serve` beside each
  Dask worker, and the JSON-lines connection a task uses to talk to it;
- `graph`: the stage list quarry writes (`stages.json`) turned into a Dask
  graph, one key per task and one barrier key per stage;
- `submit`: connects to the scheduler, submits one query, reports progress
  on stdout (`python -m quarry_dask run ...`, see `__main__`);
- `byvalue`: how the code the workers run reaches them.

The quarry binary starts this itself (it carries these files and puts them
on PYTHONPATH); only dask[distributed] has to be installed, on the driver
and on every node (python/requirements.txt). The workers need nothing of
this package: its functions and the plugin are sent to them by value.
"""

#: The version of stages.json this package reads.
STAGES_VERSION = 1

#: The protocol of `quarry worker serve` it speaks (crates/quarry-core/src/cluster/worker.rs).
PROTOCOL = 1

#: The first line `quarry worker serve` prints (LISTENING in crates/quarry-core/src/cluster/mod.rs).
LISTENING = "quarry worker listening on "
