"""The Dask cluster of the tests (python/tests and crates/quarry-cli/tests/dask.rs).

    local_cluster.py serve ADDRESS_FILE [--exit-on-stdin-eof]
        starts LocalCluster(n_workers=2, processes=True, threads_per_worker=1),
        writes the scheduler's HOST:PORT to ADDRESS_FILE (whole, by a
        rename) and runs until it is stopped, or until its stdin ends
        (with the flag). Its worker processes end with it (Dask's own
        doing). crates/quarry-cli/tests/dask.rs starts it under crates/quarry-cli/tests/remote/supervise.py;
        python/tests with the flag, holding the pipe. The package is not
        on its path: what the workers run of it must come by value.
    local_cluster.py info HOST:PORT
        prints one JSON object: for each worker, its process id and those
        of the quarry workers beside it (the plugin's processes).
"""

import json
import os
import sys
import time


def serve(address_file, exit_on_stdin_eof):
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        memory_limit="4GiB",
        dashboard_address=None,
    )
    address = cluster.scheduler_address.removeprefix("tcp://")
    with open(address_file + ".tmp", "w") as f:
        f.write(address)
    os.replace(address_file + ".tmp", address_file)
    print(f"scheduler at {address}", flush=True)
    if exit_on_stdin_eof:
        while sys.stdin.buffer.read(4096):
            pass
        try:
            cluster.close(timeout=10)
        finally:
            os._exit(0)
    while True:
        time.sleep(3600)


def quarry_pids(dask_worker):
    return {
        "pid": os.getpid(),
        "quarry": [
            p.process.pid
            for name, p in dask_worker.plugins.items()
            if name.startswith("quarry-server-") and getattr(p, "process", None)
        ],
    }


def info(address):
    from distributed import Client

    with Client(address, timeout=10) as client:
        print(json.dumps(client.run(quarry_pids)), flush=True)


if __name__ == "__main__":
    command, arg = sys.argv[1:3]
    if command == "serve":
        serve(arg, "--exit-on-stdin-eof" in sys.argv[3:])
    elif command == "info":
        info(arg)
    else:
        sys.exit(f"unknown command {command}")
