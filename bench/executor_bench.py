"""Executor benchmark: per-step overhead (50-step chain), fan-out wall time, run creation under load.

chain  The corpus' chain_50.yaml (50 tiny `sh -c` links + one check step: 51 pods in a line) runs
       --repeat times through an in-process server (`create_app` with the executor on, Flask test client
       for the API). Chain wall = last node's `_finished` - first node's `_started` (the private float
       times the operator keeps in run_nodes.data; the RFC 3339 times have whole seconds only). Bare step
       cost = the same 51 argv (taken from the run's nodes: each pod's template command with the node's
       input parameter values substituted; /tmp paths redirected to a temp dir) run directly one after
       another with subprocess. Our overhead per step = (chain wall - bare cost of all 51) / 51, compared
       with a bare `python3 -c pass` spawn measured in the same repetition. The reference interpreter
       is the one a step's `python3` really executes: looked up on the PATH steps get (the server's),
       and when that is a wrapper script (a pyenv shim: a bash script that execs `pyenv exec`, ~100 ms)
       the interpreter it finally runs (`sys.executable`); the targets are judged against that real
       interpreter. The shim's spawn is shown too ("which"), for comparison with older figures. Timers
       wrapped around the executor's launcher, database writes and output collection (in-process, no
       code changed) split the wall into: launch (spawn of the step's wrapper), step process life
       (launch -> exit noticed, which includes the isolation wrapper: `kfp-step`, pyspawner + sh, or
       unshare + mount + sh), hand-off (exit noticed -> next launch: collecting outputs, storing artifacts, the
       operator's reconcile) and the rest.
fanout fanout_30.yaml (source -> 30 parallel tiny steps -> gather) the same way: wall versus the slowest
       single step run directly plus one bare spawn of the real interpreter.
create A real `kfp-backend serve` subprocess (waitress, --max-parallel-steps 40 so they really run at
       once) with 20 runs of an 8 x `sleep 2` chain executing; N client threads POST
       /apis/v1beta1/runs with a one-step workflow manifest for --duration s. Also the same against a
       server with the executor off (API only), as the baseline.

Nothing is deleted before every measurement is done (`delete_later`): on ext4 without a journal (the
CI machine kind's root filesystem) each new inode allocated within minutes of many deletions costs a
scan over the recently deleted ones (`recently_deleted` in the kernel, up to ~0.6 ms of CPU per file
seen here), so a bench's own cleanup between repetitions would slow down every step launched after
it. For the same reason, figures taken right after `make test` (which deletes thousands of files)
come out slower on such a filesystem: wait a few minutes.

    .venv/bin/python bench/executor_bench.py                              # all three, SQLite
    .venv/bin/python bench/executor_bench.py --backends sqlite,postgres --json /tmp/executor.json
    .venv/bin/python bench/executor_bench.py --only chain --repeat 9
    .venv/bin/python bench/executor_bench.py --only chain,fanout --isolations auto,bwrap   # old and new side by side
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, fresh_database, percentile
from list_runs_bench import background_off
from rps_bench import free_port, process_cpu_seconds, server_command, wait_until_up
from sqlalchemy import text

from kfp_backend.app import create_app, shutdown
from kfp_backend.config import Settings
from kfp_backend.executor import bwrap
from kfp_backend.executor import driver as driver_module
from kfp_backend.executor.launcher import StepSpec
from kfp_backend.executor.sandbox import base_env

API = "/apis/v1beta1"
PLACEHOLDER = re.compile(r"\{\{inputs\.parameters\.([^}]+)\}\}")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------------------------- bare costs


def python3_paths() -> tuple[str, str]:
    """(what a step's PATH finds as python3, the interpreter it finally runs)."""
    found = shutil.which("python3", path=base_env("/tmp", {})["PATH"])
    if not found:
        raise SystemExit("python3 is not on PATH")
    real = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                          check=True).stdout.strip()
    return found, real or found


def spawn_ms(argv: list[str], samples: int) -> float:
    """Median wall time of running `argv` to completion (fork/exec, run, wait)."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


def bare_argv(argv: list[str], tmp: Path) -> list[str]:
    """The step's argv with its /tmp paths moved into `tmp` (a step sees a private /tmp; here we must not
    write into the host's)."""
    return [part.replace("/tmp/", f"{tmp}/") for part in argv]


def run_bare(steps: list[tuple[list[str], list[str]]], tmp: Path) -> list[float]:
    """Run each argv directly, one after another; ms per step."""
    times = []
    for argv, _paths in steps:
        step_tmp = fresh_dir(tmp)
        rewritten = bare_argv(argv, step_tmp)
        start = time.perf_counter()
        subprocess.run(rewritten, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=step_tmp, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return times


# --------------------------------------------------------------------------------------------- in-process server


class Probe:
    """Timers around the executor's launcher, database writes and output collection of one in-process server."""

    def __init__(self, app: Any) -> None:
        self.executor = app.extensions["kfp_backend.executor"]
        self.launches: list[dict[str, float]] = []
        self.db_writes: list[float] = []
        self.collects: list[float] = []
        self.artifact_puts: list[float] = []
        self.done: set[str] = set()  # runs whose final state was written
        self.finished = threading.Condition()  # notified when a run is added to `done`
        self._wrap_instance(self.executor.launcher, "start_many", self._start_many)
        self._wrap_instance(self.executor.state, "save_progress", self._save_progress)
        self._wrap_instance(self.executor.artifacts, "put", self._timed(self.artifact_puts))
        self._original_collect = driver_module.RunDriver._collect
        collects, original = self.collects, self._original_collect

        def collect(driver: Any, node: dict, result: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(driver, node, result)
            finally:
                collects.append((time.perf_counter() - start) * 1000)

        driver_module.RunDriver._collect = collect  # type: ignore[method-assign]

    def close(self) -> None:
        driver_module.RunDriver._collect = self._original_collect  # type: ignore[method-assign]

    def reset(self) -> None:
        for series in (self.launches, self.db_writes, self.collects, self.artifact_puts):
            series.clear()

    @staticmethod
    def _wrap_instance(target: Any, name: str, make: Callable[[Callable], Callable]) -> None:
        setattr(target, name, make(getattr(target, name)))

    @staticmethod
    def _timed(series: list[float]) -> Callable[[Callable], Callable]:
        def make(original: Callable) -> Callable:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    series.append((time.perf_counter() - start) * 1000)
            return wrapper
        return make

    def _start_many(self, original: Callable) -> Callable:
        """One record per step: the wave's call and return times (shared by its steps), its own exit."""
        def start_many(items: list[tuple[Any, Callable]]) -> Any:
            call = time.perf_counter()
            wave = len(self.launches)
            records: list[dict[str, float]] = []
            wrapped = []
            for spec, on_exit in items:
                record = {"call": call, "wave": wave}

                def exited(result: Any, record: dict[str, float] = record, on_exit: Callable = on_exit) -> None:
                    record["exit"] = time.perf_counter()
                    on_exit(result)

                records.append(record)
                wrapped.append((spec, exited))
            outcomes = original(wrapped)
            returned = time.perf_counter()
            for record in records:
                record["returned"] = returned
            self.launches.extend(records)
            return outcomes
        return start_many

    def _save_progress(self, original: Callable) -> Callable:
        def save(run_id: str, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(run_id, *args, **kwargs)
            finally:
                self.db_writes.append((time.perf_counter() - start) * 1000)
                if kwargs.get("finished"):
                    with self.finished:
                        self.done.add(run_id)
                        self.finished.notify_all()
        return save


_DELETE_LATER: list[Path] = []


def delete_later(path: Path) -> Path:
    """Remove `path` once every measurement is done (see the module docstring); returns it."""
    _DELETE_LATER.append(path)
    return path


def delete_scratch() -> None:
    while _DELETE_LATER:
        shutil.rmtree(_DELETE_LATER.pop(), ignore_errors=True)


def fresh_dir(parent: Path) -> Path:
    """A new empty directory below `parent` (never reused: nothing is deleted between measurements)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


class InProcessServer:
    def __init__(self, database_url: str, max_parallel_steps: int = 0, wrapper: str = "kfp-step",
                 isolation: str = "auto", **settings: Any) -> None:
        """`settings`: further Settings fields (ir_bench.py: the step environments' directory)."""
        self.data_dir = delete_later(Path(tempfile.mkdtemp(prefix="kfpb-exec-bench-")))
        self.settings = Settings(data_dir=self.data_dir, database_url=database_url, executor_enabled=True,
                                 log_level="WARNING", max_parallel_steps=max_parallel_steps, step_wrapper=wrapper,
                                 step_isolation=isolation, **background_off(), **settings)
        try:
            self.app = create_app(self.settings)
        except RuntimeError as exc:
            raise SystemExit(f"{exc}: leave {wrapper} out of --wrappers, or {isolation} out of --isolations") from None
        self.client = self.app.test_client()
        self.probe = Probe(self.app)
        self.engine = self.app.extensions["kfp_backend.services"].db.engine
        launcher = self.probe.executor.launcher
        self.wrapper = wrapper
        self.isolation = launcher.isolation

    def close(self) -> None:
        self.probe.close()
        shutdown(self.app)

    def run(self, manifest: str, name: str, timeout: float = 300) -> dict[str, Any]:
        """Create a run, wait for its last database write, return its nodes and timings."""
        self.probe.reset()
        posted = time.time()
        body = {"name": name, "pipeline_spec": {"workflow_manifest": manifest}}
        response = self.client.post(f"{API}/runs", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"create run: HTTP {response.status_code}: {response.get_data(True)}")
        run_id = response.get_json()["run"]["id"]
        # Wait to be told (no polling: a thread waking every few ms would take the GIL from the executor's
        # threads at each wake, and slow down what is measured).
        with self.probe.finished:
            if not self.probe.finished.wait_for(lambda: run_id in self.probe.done, timeout):
                raise RuntimeError(f"run {run_id} did not finish within {timeout} s")
        seen = time.time()
        detail = self.client.get(f"{API}/runs/{run_id}").get_json()
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT data FROM run_nodes WHERE run_id = :id"), {"id": run_id}).all()
        nodes = [json.loads(row[0]) for row in rows]
        started = min(n["_started"] for n in nodes)
        finished = max(n.get("_finished", 0.0) for n in nodes)
        return {"run_id": run_id, "status": detail["run"].get("status"), "nodes": nodes,
                "wall_ms": (finished - started) * 1000, "claim_ms": (started - posted) * 1000,
                "visible_ms": (seen - finished) * 1000,
                "launches": sorted(self.probe.launches, key=lambda r: r["call"]),
                "db_writes": list(self.probe.db_writes), "collects": list(self.probe.collects),
                "artifact_puts": list(self.probe.artifact_puts)}


def step_argvs(manifest: dict, nodes: list[dict]) -> list[tuple[list[str], list[str]]]:
    """(argv, declared in-step paths) of each pod node, in start order: its template's command + args with
    the node's input values substituted."""
    templates = {t["name"]: t for t in manifest["spec"]["templates"]}
    out = []
    for node in sorted((n for n in nodes if n.get("type") == "Pod"), key=lambda n: n["_started"]):
        template = templates[node["templateName"]]
        container = template["container"]
        values = {p["name"]: p.get("value", "") for p in (node.get("inputs") or {}).get("parameters", [])}
        parts = [*container.get("command", []), *container.get("args", [])]
        outputs = template.get("outputs") or {}
        paths = [p["valueFrom"]["path"] for p in outputs.get("parameters", []) if "path" in p.get("valueFrom", {})]
        paths += [a["path"] for a in outputs.get("artifacts", []) if a.get("path")]
        paths += [a["path"] for a in (template.get("inputs") or {}).get("artifacts", []) if a.get("path")]
        out.append(([PLACEHOLDER.sub(lambda m, v=values: v[m.group(1)], str(part)) for part in parts],
                    sorted(set(paths))))
    return out


def run_fanout_directly(steps: list[tuple[list[str], list[str]]], tmp: Path) -> float:
    """The fan-out without the server: first step, then all middle steps at once, then the last; ms."""
    tmp = fresh_dir(tmp)

    def popen(argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(bare_argv(argv, tmp), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp)

    start = time.perf_counter()
    popen(steps[0][0]).wait()
    for proc in [popen(argv) for argv, _ in steps[1:-1]]:
        proc.wait()
    popen(steps[-1][0]).wait()
    return (time.perf_counter() - start) * 1000


def run_isolated(launcher: Any, steps: list[tuple[list[str], list[str]]], tmp: Path) -> list[float]:
    """Run each step directly under the launcher's isolation wrapper (the exact argv, env and cwd it would
    Popen: unshare + bind mounts + sh, or the rewritten paths), one after another; ms per step. No
    driver, no database, no watcher thread. The python wrapper exists only inside its spawner: there
    each step goes through the launcher alone (spawner, wrapper, reaper; still no driver, no database)."""
    times = []
    tmp = fresh_dir(tmp)
    for i, (argv, paths) in enumerate(steps):
        work_dir = tmp / f"step-{i}"
        spec = StepSpec(key=f"bench/{i}", argv=argv, env={}, work_dir=work_dir, private_paths=paths,
                        deadline_seconds=None)
        if launcher.wrapper == "python":
            start = time.perf_counter()
            launcher.start(spec, lambda result: None).wait(60)
            times.append((time.perf_counter() - start) * 1000)
            continue
        work_dir.mkdir(parents=True)
        plan = launcher._plan(spec)
        for path in paths:
            launcher.host_path(spec, path).parent.mkdir(parents=True, exist_ok=True)
        if launcher.isolation == "bwrap":  # the step's user gets its tree, as the launcher does
            bwrap.hand_over(work_dir / "root", launcher.sandbox_options.user)
        start = time.perf_counter()
        subprocess.run(plan.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=plan.cwd, env=plan.env, check=False)
        times.append((time.perf_counter() - start) * 1000)
    return times


def wave_launch_ms(launches: list[dict[str, float]]) -> float:
    """Time spent in the launcher's start_many, each wave (one call for several steps) counted once."""
    waves = {r["wave"]: r["returned"] - r["call"] for r in launches}
    return sum(waves.values()) * 1000


def timeline(result: dict[str, Any]) -> dict[str, float]:
    """Split a sequential run's wall into launch / process life / hand-off between steps (sums, ms)."""
    launches = [r for r in result["launches"] if "exit" in r]
    launch = wave_launch_ms(launches)
    life = sum(r["exit"] - r["returned"] for r in launches) * 1000
    handoff = sum(b["call"] - a["exit"] for a, b in itertools.pairwise(launches)) * 1000
    return {"launch": launch, "life": life, "handoff": handoff,
            "edges": result["wall_ms"] - launch - life - handoff,
            "db_writes": sum(result["db_writes"]), "db_write_count": len(result["db_writes"]),
            "collect": sum(result["collects"]), "artifact_put": sum(result["artifact_puts"])}


# --------------------------------------------------------------------------------------------- chain / fan-out


def corpus_manifest(corpus: Path, name: str) -> tuple[str, dict]:
    path = corpus / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"{path} not found (--corpus)")
    text_ = path.read_text()
    return text_, yaml.safe_load(text_)


def bench_chain(server: InProcessServer, args: argparse.Namespace, python3: tuple[str, str]) -> dict[str, Any]:
    manifest_text, manifest = corpus_manifest(args.corpus, "chain_50")
    tmp = delete_later(Path(tempfile.mkdtemp(prefix="kfpb-bare-")))
    reps: list[dict[str, Any]] = []
    load_before = load()
    for rep in range(args.warmup_runs + args.repeat):
        result = server.run(manifest_text, f"chain-bench-{rep}")
        if result["status"] != "Succeeded":
            raise RuntimeError(f"chain run {result['run_id']} ended {result['status']}")
        argvs = step_argvs(manifest, result["nodes"])
        bare = run_bare(argvs, tmp)
        isolated = run_isolated(server.probe.executor.launcher, argvs, tmp / "isolated")
        spawn_which = spawn_ms([python3[0], "-c", "pass"], args.spawn_samples)
        spawn_real = spawn_ms([python3[1], "-c", "pass"], args.spawn_samples)
        if rep < args.warmup_runs:
            continue
        pods = len(argvs)
        overhead = (result["wall_ms"] - sum(bare)) / pods
        parts = timeline(result)
        reps.append({"pods": pods, "wall_ms": result["wall_ms"], "claim_ms": result["claim_ms"],
                     "visible_ms": result["visible_ms"], "bare_total_ms": sum(bare),
                     "bare_step_ms": sum(bare) / pods, "per_step_ms": result["wall_ms"] / pods,
                     "overhead_per_step_ms": overhead, "spawn_which_ms": spawn_which, "spawn_real_ms": spawn_real,
                     "ratio_which": overhead / spawn_which, "ratio_real": overhead / spawn_real,
                     **{f"{k}_per_step_ms": v / pods for k, v in parts.items() if k != "db_write_count"},
                     "db_writes_per_step": parts["db_write_count"] / pods,
                     "isolated_step_ms": sum(isolated) / pods,
                     "notice_per_step_ms": (parts["launch"] + parts["life"] - sum(isolated)) / pods,
                     "life_minus_bare_per_step_ms": (parts["life"] - sum(bare)) / pods})
        print(f"  chain rep {rep - args.warmup_runs + 1}: wall {result['wall_ms']:.0f} ms, "
              f"{reps[-1]['per_step_ms']:.1f} ms/step, bare {reps[-1]['bare_step_ms']:.1f} ms/step, "
              f"overhead {overhead:.1f} ms/step, spawn {spawn_which:.1f} / {spawn_real:.1f} ms", flush=True)
    summary = {key: median([r[key] for r in reps]) for key in reps[0]}
    summary.update({"repeat": len(reps), "load": (load_before, load()), "python3": python3, "reps": reps})
    return summary


def bench_fanout(server: InProcessServer, args: argparse.Namespace, python3: tuple[str, str]) -> dict[str, Any]:
    manifest_text, manifest = corpus_manifest(args.corpus, "fanout_30")
    tmp = delete_later(Path(tempfile.mkdtemp(prefix="kfpb-bare-")))
    reps: list[dict[str, Any]] = []
    load_before = load()
    for rep in range(args.warmup_runs + args.repeat):
        result = server.run(manifest_text, f"fanout-bench-{rep}")
        if result["status"] != "Succeeded":
            raise RuntimeError(f"fanout run {result['run_id']} ended {result['status']}")
        argvs = step_argvs(manifest, result["nodes"])
        per_step = [run_bare(argvs, tmp) for _ in range(args.bare_passes)]
        bare = [median(list(column)) for column in zip(*per_step, strict=True)]
        spawn_which = spawn_ms([python3[0], "-c", "pass"], args.spawn_samples)
        spawn_real = spawn_ms([python3[1], "-c", "pass"], args.spawn_samples)
        if rep < args.warmup_runs:
            continue
        direct = median([run_fanout_directly(argvs, tmp / "direct") for _ in range(args.bare_passes)])
        slowest = max(bare)
        pods = [n for n in result["nodes"] if n.get("type") == "Pod"]
        middle = [r for r in result["launches"] if r["call"] != result["launches"][0]["call"]][:-1]
        events = sorted([(n["_started"], 1) for n in pods] + [(n["_finished"], -1) for n in pods])
        running = peak = 0
        for _, delta in events:
            running += delta
            peak = max(peak, running)
        reps.append({"pods": len(pods), "wall_ms": result["wall_ms"], "claim_ms": result["claim_ms"],
                     "slowest_step_ms": slowest, "bare_sum_ms": sum(bare),
                     "critical_path_bare_ms": bare[0] + max(bare[1:-1]) + bare[-1],
                     "spawn_which_ms": spawn_which, "spawn_real_ms": spawn_real,
                     "ratio_which": result["wall_ms"] / (slowest + spawn_which),
                     "ratio_real": result["wall_ms"] / (slowest + spawn_real), "peak_running": peak,
                     "direct_ms": direct,
                     "launch_spread_ms": (max(r["returned"] for r in middle) - min(r["call"] for r in middle)) * 1000,
                     "launch_ms": wave_launch_ms(result["launches"]), "waves": len({r["wave"] for r in middle}),
                     "collect_ms": sum(result["collects"]), "db_write_ms": sum(result["db_writes"])})
        print(f"  fanout rep {rep - args.warmup_runs + 1}: wall {result['wall_ms']:.0f} ms, slowest step "
              f"{slowest:.1f} ms, spawn {spawn_which:.1f} / {spawn_real:.1f} ms, peak running {peak}", flush=True)
    summary = {key: median([r[key] for r in reps]) for key in reps[0]}
    summary.update({"repeat": len(reps), "load": (load_before, load()), "python3": python3,
                    "slots": server.settings.effective_max_parallel_steps, "reps": reps})
    return summary


# --------------------------------------------------------------------------------------------- creation throughput

SLEEPER = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: bench-sleeper-}}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
{tasks}
  - name: nap
    container: {{image: alpine, command: [sh, -c, 'sleep {seconds}']}}
"""

TINY = """apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: bench-tiny-
  annotations: {pipelines.kubeflow.org/kfp_sdk_version: 1.8.22}
spec:
  entrypoint: main
  arguments:
    parameters:
    - {name: message, value: hello}
  templates:
  - name: main
    inputs:
      parameters:
      - {name: message}
    dag:
      tasks:
      - name: say
        template: say
        arguments:
          parameters:
          - {name: message, value: '{{inputs.parameters.message}}'}
  - name: say
    container:
      image: alpine
      command: [sh, -c, 'echo "$0"', '{{inputs.parameters.message}}']
    inputs:
      parameters:
      - {name: message}
"""


def sleeper_manifest(steps: int, seconds: float) -> str:
    tasks = []
    for i in range(steps):
        after = f", dependencies: [nap-{i - 1}]" if i else ""
        tasks.append(f"      - {{name: nap-{i}, template: nap{after}}}")
    return SLEEPER.format(tasks="\n".join(tasks), seconds=seconds)


def creator(base: str, manifest: str, stop: list[float], measure_from: list[float], start: threading.Barrier,
            latencies: list[float], errors: list[str]) -> None:
    with requests.Session() as session:
        start.wait()
        n = 0
        while True:
            began = time.perf_counter()
            if began >= stop[0]:
                return
            n += 1
            try:
                body = {"name": f"create-bench-{threading.get_ident()}-{n}",
                        "pipeline_spec": {"workflow_manifest": manifest}}
                response = session.post(f"{base}{API}/runs", timeout=60, json=body)
                ok = response.status_code == 200
                if not ok:
                    errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            except requests.RequestException as exc:
                ok = False
                errors.append(type(exc).__name__)
            ended = time.perf_counter()
            if ok and began >= measure_from[0] and ended <= stop[0]:
                latencies.append((ended - began) * 1000)


def count_runs(base: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    token = ""
    while True:
        body = requests.get(f"{base}{API}/runs", params={"page_size": 200, "page_token": token}, timeout=60).json()
        for run in body.get("runs", []):
            status = run.get("status") or "Pending"
            counts[status] = counts.get(status, 0) + 1
        token = body.get("next_page_token", "")
        if not token:
            return counts


def bench_create(database_url: str, args: argparse.Namespace, executor: bool) -> dict[str, Any]:
    data_dir = delete_later(Path(tempfile.mkdtemp(prefix="kfpb-create-bench-")))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [server_command(), "serve", "--port", str(port), "--data-dir", str(data_dir), "--log-level", "WARNING"]
    if database_url:
        command += ["--database-url", database_url]
    env = {**os.environ, "KFP_BACKEND_EXECUTOR_ENABLED": "true" if executor else "false",
           "KFP_BACKEND_MAX_PARALLEL_STEPS": str(args.max_parallel_steps), "KFP_BACKEND_SCHEDULER_ENABLED": "false"}
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    sleepers: list[str] = []
    try:
        wait_until_up(base, server, timeout=60)
        background = sleeper_manifest(args.sleeper_steps, args.sleeper_seconds)
        if executor:
            for i in range(args.background_runs):
                response = requests.post(f"{base}{API}/runs", timeout=60, json={
                    "name": f"sleeper-{i}", "pipeline_spec": {"workflow_manifest": background}})
                response.raise_for_status()
                sleepers.append(response.json()["run"]["id"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and count_runs(base).get("Running", 0) < args.background_runs:
                time.sleep(0.2)
        running_before = count_runs(base).get("Running", 0)
        latencies: list[list[float]] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        barrier = threading.Barrier(args.clients + 1)
        measure_from, stop = [float("inf")], [float("inf")]
        threads = [threading.Thread(target=creator, args=(base, TINY, stop, measure_from, barrier, latencies[i],
                                                          errors)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        load_before = load()
        measure_from[0] = time.perf_counter() + args.warmup
        stop[0] = measure_from[0] + args.duration
        barrier.wait()
        time.sleep(max(measure_from[0] - time.perf_counter(), 0))
        cpu, wall = process_cpu_seconds(server.pid), time.perf_counter()
        time.sleep(max(stop[0] - time.perf_counter(), 0))
        cpu = process_cpu_seconds(server.pid) - cpu
        wall = time.perf_counter() - wall
        for thread in threads:
            thread.join()
        counts = count_runs(base)
        samples = [x for per_client in latencies for x in per_client]
        result = {
            "executor": executor, "clients": args.clients, "duration_s": args.duration,
            "background_running_at_start": running_before, "created": len(samples),
            "runs_per_s": len(samples) / args.duration,
            "p50_ms": percentile(samples, 50) if len(samples) > 1 else float("nan"),
            "p95_ms": percentile(samples, 95) if len(samples) > 1 else float("nan"),
            "errors": len(errors), "error_examples": errors[:3], "server_cpu_pct": 100 * cpu / wall,
            "runs_by_status_at_end": counts, "load": (load_before, load()),
        }
        for run_id in sleepers:  # stop the background steps before the server goes
            requests.post(f"{base}{API}/runs/{run_id}/terminate", timeout=60)
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --------------------------------------------------------------------------------------------- reporting


def loads(summary: dict[str, Any]) -> str:
    return "{:.2f}/{:.2f}".format(*summary["load"])


def print_chain(rows: list[dict[str, Any]]) -> None:
    print("\nchain_50 (medians over repetitions; ms; 'per step' divides by the 51 pods)")
    header = (f"{'backend':<9}{'wrapper':<9}{'isolation':<10}{'reps':>5}{'wall':>7}"
              f"{'per step':>9}{'bare step':>10}{'overhead':>9}"
              f"{'spawn':>7}{'RATIO':>6}{'shim':>7}{'ratio':>6} |{'isolated':>9}{'launch':>7}"
              f"{'notice':>7}{'hand-off':>9}{'edges':>6}{'DB write':>9}{'collect':>8}{'claim':>6}{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in rows:
        print(f"{s['backend']:<9}{s['wrapper']:<9}{s.get('isolation', ''):<10}{s['repeat']:>5}{s['wall_ms']:>7.0f}"
              f"{s['per_step_ms']:>9.2f}"
              f"{s['bare_step_ms']:>10.2f}{s['overhead_per_step_ms']:>9.2f}{s['spawn_real_ms']:>7.1f}"
              f"{s['ratio_real']:>6.2f}{s['spawn_which_ms']:>7.1f}{s['ratio_which']:>6.2f} |"
              f"{s['isolated_step_ms']:>9.2f}{s['launch_per_step_ms']:>7.2f}{s['notice_per_step_ms']:>7.2f}"
              f"{s['handoff_per_step_ms']:>9.2f}{s['edges_per_step_ms']:>6.2f}{s['db_writes_per_step_ms']:>9.2f}"
              f"{s['collect_per_step_ms']:>8.2f}{s['claim_ms']:>6.0f}{loads(s):>11}")
    print("overhead = per step - bare step (the step's argv run directly); RATIO = overhead / a bare `python3 -c pass` "
          "spawn of\nthe real interpreter a step's python3 runs (the target: <= 0.5); shim/ratio: the same with the "
          "PATH's python3\nwhen that is a wrapper script (pyenv shim), for comparison only.\n"
          "Per step, right of |: isolated = the step run directly under the launcher's isolation wrapper; launch = "
          "spawn of\nthat wrapper in the server; notice = process life in the server (launch -> exit noticed) - "
          "isolated; hand-off =\nexit noticed -> next launch (collect outputs, store artifacts, reconcile); edges "
          "= wall - launch - life - hand-offs.\nwall ~ 51 x (launch + isolated + notice + hand-off) + edges. DB "
          "write (node/status rows, written behind the driver)\nand collect overlap the steps; claim = POST -> "
          "first node (not in the wall).")


def print_fanout(rows: list[dict[str, Any]]) -> None:
    print("\nfanout_30 (medians over repetitions; ms)")
    header = (f"{'backend':<9}{'wrapper':<9}{'isolation':<10}{'reps':>5}{'slots':>6}{'peak':>5}{'wall':>8}"
              f"{'slowest step':>13}"
              f"{'crit. path':>11}{'spawn':>7}{'RATIO':>6}{'shim':>7}{'ratio':>6}{'direct':>7}"
              f"{'spread':>7}{'launch':>7}{'collect':>8}{'DB write':>9}{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in rows:
        print(f"{s['backend']:<9}{s['wrapper']:<9}{s.get('isolation', ''):<10}{s['repeat']:>5}{s['slots']:>6}"
              f"{s['peak_running']:>5.0f}"
              f"{s['wall_ms']:>8.0f}{s['slowest_step_ms']:>13.1f}{s['critical_path_bare_ms']:>11.1f}"
              f"{s['spawn_real_ms']:>7.1f}{s['ratio_real']:>6.2f}{s['spawn_which_ms']:>7.1f}{s['ratio_which']:>6.2f}"
              f"{s['direct_ms']:>7.1f}{s['launch_spread_ms']:>7.1f}{s['launch_ms']:>7.1f}{s['collect_ms']:>8.1f}"
              f"{s['db_write_ms']:>9.1f}{loads(s):>11}")
    print("RATIO = wall / (slowest single step run directly + one bare spawn of the real interpreter) (the target: "
          "<= 2);\nshim/ratio: the same with the PATH's python3 wrapper script, for comparison only; crit. path = "
          "source + slowest tiny + gather,\nrun directly; slots = the executor's parallel steps "
          "(default: 2 x cores); peak = most steps seen running at once;\ndirect = the same fan-out "
          "run directly (subprocess: source, 30 at once, gather; no isolation); spread = from the first launch call "
          "to the\nlast launch's return for the 30; launch = time in the launcher's start_many (a wave counted "
          "once), collect: summed over\nthe run's steps (the driver thread); DB write: summed over the run's "
          "transactions (the writer thread, overlapping the steps).")


def print_create(rows: list[dict[str, Any]]) -> None:
    print("\nrun creation through POST /apis/v1beta1/runs (kfp-backend serve subprocess)")
    header = (f"{'backend':<9}{'executor':<34}{'clients':>8}{'created':>8}{'runs/s':>8}{'p50':>8}{'p95':>8}"
              f"{'errors':>7}{'server CPU':>11}{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in rows:
        what = (f"on, {s['background_running_at_start']} runs executing" if s["executor"] else "off (API only)")
        print(f"{s['backend']:<9}{what:<34}{s['clients']:>8}{s['created']:>8}{s['runs_per_s']:>8.1f}"
              f"{s['p50_ms']:>8.1f}{s['p95_ms']:>8.1f}{s['errors']:>7}{s['server_cpu_pct']:>10.0f}%"
              f"{loads(s):>11}")
        print(f"{'':<9}runs by status at the end: {json.dumps(s['runs_by_status_at_end'])}")


# --------------------------------------------------------------------------------------------- main


def measure(args: argparse.Namespace, only: set[str], python3: tuple[str, str],
            results: dict[str, list[dict[str, Any]]]) -> None:
    """Every chosen bench on every chosen backend, into `results`."""
    for kind in [k for k in args.backends.split(",") if k]:
        with fresh_database(kind, args) as backend:
            if only & {"chain", "fanout"}:
                configurations = [(0, ("chain", "fanout"))]
                if args.wide_slots:
                    configurations.append((args.wide_slots, ("fanout",)))
                for isolation, wrapper, (slots, wanted) in itertools.product(
                    [i for i in args.isolations.split(",") if i], [w for w in args.wrappers.split(",") if w],
                    configurations,
                ):
                    server = InProcessServer(backend.url, slots, wrapper, isolation)
                    try:
                        for what, bench in (("chain", bench_chain), ("fanout", bench_fanout)):
                            if what in only and what in wanted:
                                print(f"[{kind}] {what}, {server.isolation} isolation, {wrapper} wrapper, "
                                      f"{server.settings.effective_max_parallel_steps} slots ...", flush=True)
                                outcome = bench(server, args, python3)
                                results[what].append({"backend": kind, "wrapper": wrapper,
                                                      "isolation": server.isolation, **outcome})
                    finally:
                        server.close()
            if "create" in only:
                for executor in (True, False):
                    print(f"[{kind}] create, executor {'on' if executor else 'off'} ...", flush=True)
                    # Each server gets an empty database: SQLite in its data dir, or a fresh one here.
                    if kind == "sqlite":
                        outcome = bench_create("", args, executor)
                    else:
                        with fresh_database(kind, args) as own:
                            outcome = bench_create(own.url, args, executor)
                    results["create"].append({"backend": kind, **outcome})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="chain,fanout,create", help="comma list of chain,fanout,create")
    parser.add_argument("--backends", default="sqlite", help="comma list of sqlite,postgres,mysql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "pipelines",
                        help="the pipeline corpus (chain_50.yaml, fanout_30.yaml)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each pipeline per backend")
    parser.add_argument("--warmup-runs", type=int, default=1, help="untimed runs first")
    parser.add_argument("--spawn-samples", type=int, default=5, help="bare python3 spawns per repetition")
    parser.add_argument("--wrappers", default="kfp-step,python,shell",
                        help="chain/fanout: step wrappers to measure (kfp-step: the compiled one; python: its Python "
                             "twin, what runs by default without a C compiler; shell: unshare + mount + sh, each "
                             "started by the server)")
    parser.add_argument("--isolations", default="auto",
                        help="chain/fanout: step isolations to measure, side by side (auto: the single-user "
                        "choice, namespace or rewrite; bwrap: the multi-user sandbox, as root with bubblewrap)")
    parser.add_argument("--wide-slots", type=int, default=32,
                        help="fanout: also run it with this many step slots (0: skip)")
    parser.add_argument("--bare-passes", type=int, default=3, help="fanout: direct runs of each step per repetition")
    parser.add_argument("--clients", type=int, default=4, help="create: client threads")
    parser.add_argument("--duration", type=float, default=10.0, help="create: measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="create: seconds of load before measuring")
    parser.add_argument("--background-runs", type=int, default=20, help="create: runs executing meanwhile")
    parser.add_argument("--sleeper-steps", type=int, default=8)
    parser.add_argument("--sleeper-seconds", type=float, default=2.0)
    parser.add_argument("--max-parallel-steps", type=int, default=40, help="create: the server's step slots")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)

    only = set(args.only.split(","))
    python3 = python3_paths()
    print(f"python3 of a step: {python3[0]} -> {python3[1]} (the reference: {python3[1]}); cores: {os.cpu_count()}; "
          f"load: {os.getloadavg()}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {"chain": [], "fanout": [], "create": []}
    try:
        measure(args, only, python3, results)
    finally:
        delete_scratch()
    if results["chain"]:
        print_chain(results["chain"])
    if results["fanout"]:
        print_fanout(results["fanout"])
    if results["create"]:
        print_create(results["create"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
