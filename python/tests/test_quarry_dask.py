"""Tests of quarry_dask on its own: the stage list, the graph's shape, and
runs on a local Dask cluster against fake_quarry.py (a stand-in for
`quarry worker serve` that computes nothing). crates/quarry-cli/tests/dask.rs runs them
(`python -m unittest discover -s python/tests`) in its pinned venv, before
the end-to-end runs with the real quarry.
"""

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from quarry_dask import graph, server, submit  # noqa: E402

FAKE = os.path.join(HERE, "fake_quarry.py")

# 0 ─┬─ 1 ─┐
#    └─ 2 ─┴─ 3 (output); stage 2 also reads stage 0 twice over
STAGES = {
    "version": 1,
    "stages": [
        {"id": 0, "partitions": 3, "inputs": []},
        {"id": 1, "partitions": 2, "inputs": [0]},
        {"id": 2, "partitions": 2, "inputs": [0]},
        {"id": 3, "partitions": 1, "inputs": [1, 2]},
    ],
}


class StageListTest(unittest.TestCase):
    def test_a_good_list_is_read(self):
        stages = graph.parse_stages(STAGES)
        self.assertEqual([s["id"] for s in stages], [0, 1, 2, 3])
        self.assertEqual(stages[3]["inputs"], [1, 2])

    def test_bad_lists_are_refused_with_the_reason(self):
        cases = [
            ({"version": 2, "stages": []}, "version 2"),
            ({"version": 1}, "no 'stages'"),
            ({"version": 1, "stages": [{"id": 0, "partitions": 1}]}, "lacks 'inputs'"),
            (
                {"version": 1, "stages": [{"id": 0, "partitions": 1, "inputs": [1]}]},
                "reads stage 1, which does not come before it",
            ),
            (
                {
                    "version": 1,
                    "stages": [
                        {"id": 0, "partitions": 1, "inputs": []},
                        {"id": 0, "partitions": 1, "inputs": []},
                    ],
                },
                "stage 0 is twice",
            ),
            ({"version": 1, "stages": [{"id": 0, "partitions": -1, "inputs": []}]}, "integers"),
        ]
        for doc, why in cases:
            with self.assertRaises(graph.StagesError) as e:
                graph.parse_stages(doc)
            self.assertIn(why, str(e.exception))

    def test_a_missing_file_names_its_path(self):
        with self.assertRaises(graph.StagesError) as e:
            graph.read_stages("/nonexistent/stages.json")
        self.assertIn("/nonexistent/stages.json", str(e.exception))


class GraphShapeTest(unittest.TestCase):
    def test_a_key_per_task_and_a_barrier_per_stage(self):
        stages = graph.parse_stages(STAGES)
        run, barrier = graph.run_task, graph.stage_barrier
        dsk, keys, last = graph.build_graph(stages, "/x", "plugin", "q", run, barrier)
        self.assertEqual(len(keys), 8 + 4)
        self.assertEqual(set(keys), set(dsk))
        self.assertEqual(last, "q-b3")
        # a task depends on the barriers of its inputs, nothing else
        self.assertEqual(dsk[("q-s3", 0)], (graph.run_task, "plugin", "/x", 3, 0, "q-b1", "q-b2"))
        self.assertEqual(dsk[("q-s1", 1)], (graph.run_task, "plugin", "/x", 1, 1, "q-b0"))
        self.assertEqual(dsk[("q-s0", 2)], (graph.run_task, "plugin", "/x", 0, 2))
        # a barrier on every task of its stage
        self.assertEqual(dsk["q-b0"], (graph.stage_barrier, 0, [("q-s0", p) for p in range(3)]))
        # edges: one per task into its stage's barrier, one per (task, input)
        edges = sum(len(v[2]) for k, v in dsk.items() if isinstance(k, str))
        edges += sum(len(v) - 5 for k, v in dsk.items() if isinstance(k, tuple))
        self.assertEqual(edges, 8 + (2 + 2 + 2))

    def test_the_task_functions_go_by_value(self):
        dsk, _, _ = graph.build_graph(graph.parse_stages(STAGES), "/x", "p", "q")
        run, barrier = dsk[("q-s0", 0)][0], dsk["q-b0"][0]
        self.assertIs(run.fn, graph.run_task)
        self.assertIs(barrier.fn, graph.stage_barrier)
        # one wrapper per function: pickled once per graph
        self.assertIs(dsk[("q-s3", 0)][0], run)

    def test_no_stages_no_graph(self):
        self.assertEqual(graph.build_graph([], "/x", "p", "q"), ({}, [], None))

    def test_the_server_command_line(self):
        args = server.server_args("/bin/quarry", 2, 1 << 30, "/tmp/w")
        self.assertEqual(
            args,
            [
                "/bin/quarry",
                "worker",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "2",
                "--temp-dir",
                "/tmp/w",
                "--exit-on-stdin-eof",
                "--memory-limit",
                str(1 << 30),
            ],
        )
        self.assertNotIn("--memory-limit", server.server_args("q", 1, None, "/t"))


def load_elsewhere(data, code):
    """Unpickles `data` in a Python that cannot import quarry_dask (as on a
    Dask worker) and prints `code` evaluated on it (`x`)."""
    out = subprocess.run(
        [sys.executable, "-c", f"import pickle, sys; x = pickle.loads(sys.stdin.buffer.read()); print({code})"],
        input=data,
        capture_output=True,
        cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if out.returncode != 0:
        raise AssertionError(out.stderr.decode())
    return out.stdout.decode().strip()


class ByValueTest(unittest.TestCase):
    """What the workers run reaches a Python without this package."""

    def test_plain_pickle_of_a_task_function_carries_its_code(self):
        import pickle

        from quarry_dask import byvalue

        data = pickle.dumps(byvalue.Function(graph.stage_barrier))
        self.assertEqual(load_elsewhere(data, "x(4, [1, 2])"), "{'stage': 4, 'tasks': 2}")
        # the package itself is not importable there
        with self.assertRaises(AssertionError) as e:
            load_elsewhere(pickle.dumps(graph.stage_barrier), "x")
        self.assertIn("No module named 'quarry_dask'", str(e.exception))

    @unittest.skipUnless(
        importlib.util.find_spec("distributed"), "needs dask[distributed] (python/requirements.txt)"
    )
    def test_plain_pickle_of_the_plugin_carries_its_class(self):
        import pickle

        from quarry_dask import byvalue

        plugin = byvalue.Plugin(server.QuarryServer("/bin/quarry", "2GB"))
        self.assertTrue(plugin.idempotent)
        got = load_elsewhere(
            pickle.dumps(plugin),
            "(type(x).__name__, x.program, x.memory_limit, "
            "isinstance(x, __import__('distributed').WorkerPlugin))",
        )
        self.assertEqual(got, "('QuarryServer', '/bin/quarry', '2GB', True)")


def dask_available():
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@unittest.skipUnless(dask_available(), "needs dask[distributed] (python/requirements.txt)")
class OnDaskTest(unittest.TestCase):
    """Runs on a LocalCluster of 2 worker processes with one thread each."""

    @classmethod
    def setUpClass(cls):
        from distributed import Client

        # In a process of its own, without this package on its path (as
        # on a real cluster); it ends when its stdin does.
        cls.dir = tempfile.mkdtemp(prefix="quarry-dask-cluster-")
        address_file = os.path.join(cls.dir, "address")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cls.cluster = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "local_cluster.py"), "serve", address_file,
             "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=cls.dir,
        )
        deadline = time.monotonic() + 60
        while not os.path.exists(address_file):
            if cls.cluster.poll() is not None or time.monotonic() > deadline:
                cls.tearDownClass()
                raise RuntimeError("the local Dask cluster did not start")
            time.sleep(0.05)
        with open(address_file) as f:
            cls.address = f.read().strip()
        cls.client = Client(cls.address)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "client", None):
            cls.client.close()
        cls.cluster.stdin.close()
        try:
            cls.cluster.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cls.cluster.kill()
            cls.cluster.wait()
        subprocess.run(["rm", "-rf", cls.dir])

    def exchange(self, behaviour=None):
        d = tempfile.mkdtemp(prefix="quarry-dask-test-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        with open(os.path.join(d, "stages.json"), "w") as f:
            json.dump(STAGES, f)
        if behaviour:
            with open(os.path.join(d, "fake.json"), "w") as f:
                json.dump(behaviour, f)
        return d

    def run_query(self, exchange):
        out = io.StringIO()
        code = submit.run(self.address, exchange, FAKE, out=out)
        return code, out.getvalue().splitlines()

    def log(self, exchange):
        with open(os.path.join(exchange, "fake-log")) as f:
            return [line.split() for line in f]

    def test_every_task_runs_once_after_the_stages_it_reads(self):
        ex = self.exchange()
        code, lines = self.run_query(ex)
        self.assertEqual(code, 0)
        done = sorted(tuple(map(int, line.split()[1:5])) for line in lines[:-1])
        # each on one of the two workers, and timed there
        workers = {line.split()[5] for line in lines[:-1]}
        self.assertEqual(len(workers), 2, lines)
        self.assertTrue(all(w.startswith("tcp://127.0.0.1:") for w in workers), workers)
        self.assertTrue(all(float(line.split()[6]) > 0 for line in lines[:-1]), lines)
        expected = [(s["id"], p, 100 * s["id"] + p, 7) for s in STAGES["stages"] for p in range(s["partitions"])]
        self.assertEqual(done, sorted(expected))
        self.assertEqual(lines[-1], "ok 8")
        # the log's order is the real one: a task starts only after every
        # task of each stage it reads has ended
        ended = set()
        for what, s, p, _pid in self.log(ex):
            s, p = int(s), int(p)
            if what == "start":
                for i in STAGES["stages"][s]["inputs"]:
                    parts = STAGES["stages"][i]["partitions"]
                    self.assertTrue(
                        all((i, q) in ended for q in range(parts)),
                        f"task {p} of stage {s} started before stage {i} ended",
                    )
            else:
                ended.add((s, p))
        self.assertEqual(len(ended), 8)
        # both workers' quarry ran tasks
        self.assertEqual(len({pid for *_, pid in self.log(ex)}), 2)

    def test_a_failed_task_fails_the_query_with_its_message(self):
        ex = self.exchange({"fail": [[1, 1]]})
        with self.assertRaises(submit.Failure) as e:
            self.run_query(ex)
        self.assertEqual(str(e.exception), "boom at task 1 of stage 1")
        # nothing of stage 3 ran
        self.assertNotIn("3", {s for _, s, _, _ in self.log(ex)})

    def test_end_of_stdin_cancels_the_running_task(self):
        ex = self.exchange({"hang": [[0, 1]]})
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        proc = subprocess.Popen(
            [sys.executable, "-m", "quarry_dask", "run", "--scheduler", self.address,
             "--exchange", ex, "--quarry", FAKE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(ex, "fake-log")) or not any(
            line[:3] == ["start", "0", "1"] for line in self.log(ex)
        ):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                self.fail(f"the hanging task never started: {proc.communicate()}")
            time.sleep(0.05)
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=20), 130, proc.stderr.read().decode())
        # the task's connection was closed: quarry takes that as a cancel
        self.assertIn(["closed", "0", "1"], [line[:3] for line in self.log(ex)])
        proc.stdout.close()
        proc.stderr.close()

    def test_a_killed_worker_takes_its_quarry_with_it_and_the_query_ends(self):
        ex = self.exchange({"sleep": 0.3})
        # (one task first: the plugin is set up)
        self.run_query(self.exchange())
        name = submit.plugin_name(FAKE, None)

        def server_pid(dask_worker):
            plugin = dask_worker.plugins.get(name)
            return plugin.process.pid if plugin and plugin.process else None

        servers = self.client.run(server_pid)
        pids = self.client.run(os.getpid)
        victim = sorted(pids)[0]
        killed = threading.Event()

        def kill_when_busy():
            # when the victim's quarry has started a task it has not ended
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    log = self.log(ex)
                except OSError:
                    log = []
                mine = [(what, s, p) for what, s, p, pid in log if int(pid) == servers[victim]]
                started = {(s, p) for what, s, p in mine if what == "start"}
                ended = {(s, p) for what, s, p in mine if what == "end"}
                if started - ended:
                    os.kill(pids[victim], signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        code, lines = self.run_query(ex)
        killer.join()
        self.assertTrue(killed.is_set(), "the victim never ran a task")
        self.assertEqual(code, 0)
        self.assertEqual(len(lines), 9)
        runs = int(lines[-1].split()[1])
        self.assertGreater(runs, 8, "no task ran again after the kill")
        for s in STAGES["stages"]:
            for p in range(s["partitions"]):
                self.assertTrue(os.path.exists(graph.manifest_path(ex, s["id"], p)))
        # the killed worker's quarry is gone (or a zombie nobody reaps yet)
        deadline = time.monotonic() + 10
        while alive(servers[victim]):
            self.assertLess(time.monotonic(), deadline, "the killed worker's quarry lives on")
            time.sleep(0.05)
        # the nanny started the worker again, with a quarry of its own
        deadline = time.monotonic() + 30
        while True:
            new = self.client.run(server_pid)
            if len(new) == 2 and None not in new.values():
                break
            self.assertLess(time.monotonic(), deadline, f"no second worker with quarry: {new}")
            time.sleep(0.1)
        self.assertNotIn(servers[victim], new.values())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    unittest.main()
