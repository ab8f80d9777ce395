"""`python -m quarry_dask run|check …`: what the quarry binary starts.

    run   --scheduler HOST:PORT --exchange DIR --quarry PATH [--worker-memory-limit SIZE]
          submits the query whose graph quarry left in DIR (see submit.py)
    check prints `ok dask VERSION distributed VERSION`, or fails when
          dask[distributed] cannot be imported
"""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m quarry_dask")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one query's task graph on a Dask cluster")
    run.add_argument("--scheduler", required=True, metavar="HOST:PORT")
    run.add_argument("--exchange", required=True, metavar="DIR")
    run.add_argument(
        "--quarry", required=True, metavar="PATH", help="the quarry program on the workers"
    )
    run.add_argument(
        "--worker-memory-limit",
        metavar="SIZE",
        help="memory budget of each worker's quarry (default: the Dask worker's limit)",
    )
    sub.add_parser("check", help="check that dask[distributed] can be imported")
    args = parser.parse_args(argv)

    if args.command == "check":
        try:
            import dask
            import distributed
        except ImportError as e:
            return fail(f"cannot import dask.distributed: {e}")
        print(f"ok dask {dask.__version__} distributed {distributed.__version__}", flush=True)
        return 0

    from .graph import StagesError
    from .submit import Failure, run as run_query

    try:
        return run_query(
            args.scheduler,
            args.exchange,
            args.quarry,
            args.worker_memory_limit,
            stdin=sys.stdin.buffer,
        )
    except (Failure, StagesError) as e:
        return fail(str(e))
    except Exception as e:  # a bug here or in Dask: the trace, then the line
        import traceback

        traceback.print_exc()
        return fail(f"quarry_dask: {type(e).__name__}: {e}")


def fail(message):
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skips the interpreter's teardown of Dask's threads (slow, and noisy
    # when the scheduler is gone).
    os._exit(code)
