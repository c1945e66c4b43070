"""KFP v2 (IR) execution benchmark: per-task overhead of lightweight Python components, ParallelFor wall time.

The pipelines are compiled at bench time by the kfp 2.x SDK (`--kfp2-python`, a venv with kfp 2.17.3: it
cannot share this interpreter's kfp 1.8), in a subprocess, and run through an in-process server
(`executor_bench.InProcessServer`: `create_app` with the executor on, the same probes and timings). Every
task is a `@dsl.component` (caching off), so each step runs `python3 -m kfp.dsl.executor_main` in the
prepared step environment (executor/step_environments.py; made by the untimed warm-up run, kept in
--step-envs-dir across invocations, outside /tmp: a step's private /tmp would hide it).

chain     50 `add_one(x) -> int` tasks in a line, each fed the previous one's output. Wall = last node's
          `_finished` - first node's `_started`, per task = wall / 50. The steps' own cost, measured directly
          after each run on the same input (the ExecutorInput the run gave each task, /tmp paths moved
          into a scratch dir): `own` = the environment's `python3 -m kfp.dsl.executor_main
          --component_module_path F --executor_input ... --function_to_execute add_one` (F: the
          component's source, written beforehand); `step` = the whole compiled command (`sh -c` + `sh -ec`
          writing the source to a temp file, then the same executor_main) as the server runs it, its
          pip lines skipped as the server skips them. Overhead per task = per task - own; RATIO =
          overhead / a bare `python3 -c pass` spawn of the environment's python3 (the target: <= 0.5).
parallelfor  a 30-wide `dsl.ParallelFor` over a static list of `double(i) -> int`, with the server's
          default slots (2 x cores) and with --wide-slots. RATIO = wall / (slowest task's whole command
          run directly + one bare spawn), as executor_bench.py's fan-out RATIO; `direct` = the 30
          commands run directly all at once, and wall / direct (what the cores allow).

    .venv/bin/python bench/ir_bench.py                                   # both, SQLite
    .venv/bin/python bench/ir_bench.py --backends sqlite,postgres --json /tmp/ir.json
    .venv/bin/python bench/ir_bench.py --only chain --repeat 9
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from executor_bench import (
    InProcessServer,
    bare_argv,
    delete_later,
    delete_scratch,
    fresh_dir,
    load,
    loads,
    median,
    python3_paths,
    spawn_ms,
    timeline,
)
from list_bench import DEFAULT_MYSQL_URL, DEFAULT_POSTGRES_URL, fresh_database

from kfp_backend.executor import ir_steps
from kfp_backend.executor.step_environments import StepEnvironments

REPO = Path(__file__).resolve().parents[1]

PIPELINES = '''
from kfp import compiler, dsl


@dsl.component(base_image="python:3.11")
def add_one(x: int) -> int:
    return x + 1


@dsl.component(base_image="python:3.11")
def double(i: int) -> int:
    return i * 2


@dsl.pipeline(name="ir-chain")
def chain(start: int = 0):
    task = add_one(x=start).set_caching_options(False)
    for _ in range(TASKS - 1):
        task = add_one(x=task.output).set_caching_options(False)


@dsl.pipeline(name="ir-parallelfor")
def parallelfor():
    with dsl.ParallelFor(items=list(range(WIDTH))) as item:
        double(i=item).set_caching_options(False)


compiler.Compiler().compile(chain, OUT + "/chain.yaml")
compiler.Compiler().compile(parallelfor, OUT + "/parallelfor.yaml")
'''


def compile_pipelines(kfp2_python: Path, tasks: int, width: int) -> dict[str, str]:
    """{"chain": YAML, "parallelfor": YAML}, compiled by the kfp 2.x SDK in a subprocess."""
    out = delete_later(Path(tempfile.mkdtemp(prefix="kfpb-ir-compile-")))
    script = out / "pipelines.py"  # a file: the SDK reads the components' source back from it
    script.write_text(f"TASKS = {tasks}\nWIDTH = {width}\nOUT = {str(out)!r}\n" + textwrap.dedent(PIPELINES))
    done = subprocess.run([str(kfp2_python), str(script)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"compiling with {kfp2_python} failed:\n{done.stderr[-3000:]}")
    version = subprocess.run([str(kfp2_python), "-c", "import kfp; print(kfp.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    print(f"compiled with kfp {version} ({kfp2_python})", flush=True)
    return {name: (out / f"{name}.yaml").read_text() for name in ("chain", "parallelfor")}


# --------------------------------------------------------------------------------------------- direct runs


class DirectSteps:
    """The run's tasks run directly (no server), in the environment the server prepared for them."""

    def __init__(self, environments: StepEnvironments, scratch: Path) -> None:
        self.environments = environments
        self.scratch = scratch
        self.modules = fresh_dir(scratch)

    def commands(self, nodes: list[dict]) -> list[tuple[list[str], list[str], dict[str, str]]]:
        """(own argv, whole step argv, env) of each task node in start order."""
        out = []
        for node in sorted((n for n in nodes if n.get("_ir_step")), key=lambda n: n["_started"]):
            argv = node["_ir_step"]["argv"]
            prepared = self.environments.prepare_step(argv)
            env = {**os.environ, "PATH": prepared.path(os.environ.get("PATH")) or "", "_KFP_RUNTIME": "true"}
            out.append((self.executor_main(argv, str(prepared.bin_dir / "python3")), prepared.argv, env))
        return out

    def executor_main(self, argv: list[str], python: str) -> list[str]:
        """`python3 -m kfp.dsl.executor_main` on the task's input: the compiled program without its shell."""
        at = argv.index("--executor_input")
        source = argv[at - 1]
        module = self.modules / f"component_{hashlib.sha256(source.encode()).hexdigest()[:12]}.py"
        if not module.exists():
            module.write_text(source)
        return [python, "-m", "kfp.dsl.executor_main", "--component_module_path", str(module), *argv[at:]]

    def popen(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start `argv` with the /tmp paths of its ExecutorInput moved into a fresh scratch dir (in the
        server a step sees a private /tmp; here it must not write into the host's)."""
        tmp = fresh_dir(self.scratch)
        at = argv.index("--executor_input") + 1
        argv = [*argv[:at], *bare_argv(argv[at:at + 1], tmp), *argv[at + 1:]]
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=tmp, env={**env, "TMPDIR": str(tmp)})

    def one(self, argv: list[str], env: dict[str, str]) -> float:
        """ms to run `argv` to completion; raises when it fails (a failing direct run would time nothing)."""
        start = time.perf_counter()
        process = self.popen(argv, env)
        _, err = process.communicate()
        elapsed = (time.perf_counter() - start) * 1000
        if process.returncode != 0:
            raise RuntimeError(f"direct run failed ({process.returncode}): {err.decode()[-2000:]}")
        return elapsed

    def isolated(self, launcher: Any, nodes: list[dict]) -> list[float]:
        """ms of each task run directly under the server's isolation wrapper: the exact argv, env and cwd
        its launcher would start (no driver, no database); empty for the python wrapper (only its
        spawner can start it)."""
        if launcher.wrapper == "python":
            return []
        times = []
        for i, node in enumerate(sorted((n for n in nodes if n.get("_ir_step")), key=lambda n: n["_started"])):
            step = ir_steps.IrStep.from_json(node["_ir_step"])
            spec = ir_steps.step_spec(step, key=f"bench/{i}", work_dir=fresh_dir(self.scratch) / "step",
                                      environment=self.environments)
            spec.work_dir.mkdir()
            for mount in step.mounts:
                launcher.host_path(spec, mount).mkdir(parents=True, exist_ok=True)
            plan = launcher._plan(spec)
            start = time.perf_counter()
            done = subprocess.run(plan.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, cwd=plan.cwd, env=plan.env, check=False)
            times.append((time.perf_counter() - start) * 1000)
            if done.returncode != 0:
                raise RuntimeError(f"isolated run failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        return times

    def all_at_once(self, commands: list[tuple[list[str], list[str], dict[str, str]]]) -> float:
        """ms to run every task's whole command at once."""
        start = time.perf_counter()
        for process in [self.popen(step, env) for _, step, env in commands]:
            process.communicate()
        return (time.perf_counter() - start) * 1000


# --------------------------------------------------------------------------------------------- benches


def run_checked(server: InProcessServer, manifest: str, name: str) -> dict[str, Any]:
    """The run, checked to have succeeded, with the server's CPU time during it (this process, steps not
    counted: they are children)."""
    before = os.times()
    result = server.run(manifest, name, timeout=900)
    after = os.times()
    result["server_cpu_ms"] = (after.user + after.system - before.user - before.system) * 1000
    if result["status"] != "Succeeded":
        failed = {n.get("displayName"): n.get("message") for n in result["nodes"] if n.get("phase") != "Succeeded"}
        raise RuntimeError(f"{name}: run {result['run_id']} ended {result['status']}: {failed}")
    return result


def spawns(python: str, real: str, samples: int) -> dict[str, float]:
    return {"spawn_ms": spawn_ms([python, "-c", "pass"], samples), "spawn_real_ms": spawn_ms([real, "-c", "pass"],
                                                                                               samples)}


def bench_chain(server: InProcessServer, manifest: str, args: argparse.Namespace, real: str) -> dict[str, Any]:
    direct = DirectSteps(StepEnvironments.from_settings(server.settings), delete_later(fresh_dir(args.scratch)))
    reps: list[dict[str, Any]] = []
    load_before = load()
    for rep in range(args.warmup_runs + args.repeat):
        result = run_checked(server, manifest, f"ir-chain-{rep}")
        commands = direct.commands(result["nodes"])
        own = [direct.one(argv, env) for argv, _, env in commands]
        step = [direct.one(argv, env) for _, argv, env in commands]
        isolated = direct.isolated(server.probe.executor.launcher, result["nodes"]) or [float("nan")]
        spawn = spawns(commands[0][0][0], real, args.spawn_samples)
        if rep < args.warmup_runs:
            continue
        tasks = len(commands)
        per_task = result["wall_ms"] / tasks
        overhead = per_task - sum(own) / tasks
        parts = timeline(result)
        reps.append({"tasks": tasks, "wall_ms": result["wall_ms"], "claim_ms": result["claim_ms"],
                     "per_task_ms": per_task, "own_ms": sum(own) / tasks, "step_ms": sum(step) / tasks,
                     "overhead_ms": overhead, "overhead_beyond_step_ms": per_task - sum(step) / tasks, **spawn,
                     "ratio": overhead / spawn["spawn_ms"],
                     "ratio_beyond_step": (per_task - sum(step) / tasks) / spawn["spawn_ms"],
                     "own_per_spawn": sum(own) / tasks / spawn["spawn_ms"],
                     **{f"{k}_per_task_ms": v / tasks for k, v in parts.items() if k != "db_write_count"},
                     "isolated_ms": sum(isolated) / tasks, "server_cpu_per_task_ms": result["server_cpu_ms"] / tasks,
                     "notice_per_task_ms": (parts["launch"] + parts["life"] - sum(isolated)) / tasks})
        r = reps[-1]
        print(f"  chain rep {len(reps)}: wall {r['wall_ms']:.0f} ms, {per_task:.1f} ms/task, own {r['own_ms']:.1f}, "
              f"step {r['step_ms']:.1f}, overhead {overhead:.1f} ms/task, spawn {r['spawn_ms']:.1f} ms, "
              f"RATIO {r['ratio']:.2f}, load {load()}", flush=True)
    summary = {key: median([r[key] for r in reps]) for key in reps[0]}
    summary.update({"repeat": len(reps), "load": (load_before, load()), "reps": reps})
    return summary


def bench_parallelfor(server: InProcessServer, manifest: str, args: argparse.Namespace, real: str) -> dict[str, Any]:
    direct = DirectSteps(StepEnvironments.from_settings(server.settings), delete_later(fresh_dir(args.scratch)))
    reps: list[dict[str, Any]] = []
    load_before = load()
    for rep in range(args.warmup_runs + args.repeat):
        result = run_checked(server, manifest, f"ir-parallelfor-{rep}")
        commands = direct.commands(result["nodes"])
        own = [direct.one(argv, env) for argv, _, env in commands]
        step = [direct.one(argv, env) for _, argv, env in commands]
        at_once = direct.all_at_once(commands)
        spawn = spawns(commands[0][0][0], real, args.spawn_samples)
        if rep < args.warmup_runs:
            continue
        pods = [n for n in result["nodes"] if n.get("_ir_step")]
        events = sorted([(n["_started"], 1) for n in pods] + [(n["_finished"], -1) for n in pods])
        running = peak = 0
        for _, delta in events:
            running += delta
            peak = max(peak, running)
        reps.append({"tasks": len(commands), "wall_ms": result["wall_ms"], "slowest_own_ms": max(own),
                     "slowest_step_ms": max(step), "direct_ms": at_once, **spawn,
                     "ratio": result["wall_ms"] / (max(step) + spawn["spawn_ms"]),
                     "ratio_direct": result["wall_ms"] / at_once, "peak_running": peak,
                     "collect_ms": sum(result["collects"]), "db_write_ms": sum(result["db_writes"]),
                     "server_cpu_ms": result["server_cpu_ms"]})
        r = reps[-1]
        print(f"  parallelfor rep {len(reps)}: wall {r['wall_ms']:.0f} ms, slowest step {max(step):.1f} ms, "
              f"direct at once {at_once:.0f} ms, peak running {peak}, load {load()}", flush=True)
    summary = {key: median([r[key] for r in reps]) for key in reps[0]}
    summary.update({"repeat": len(reps), "load": (load_before, load()),
                    "slots": server.settings.effective_max_parallel_steps, "reps": reps})
    return summary


# --------------------------------------------------------------------------------------------- reporting


def print_chain(rows: list[dict[str, Any]]) -> None:
    print("\nIR chain of lightweight Python components (medians over repetitions; ms per task)")
    header = (f"{'backend':<9}{'reps':>5}{'tasks':>6}{'wall':>8}{'per task':>9}{'own':>7}{'step':>7}{'overhead':>9}"
              f"{'spawn':>7}{'RATIO':>6}{'beyond step':>12}{'ratio':>6} |{'isolated':>9}{'launch':>7}{'notice':>7}"
              f"{'hand-off':>9}{'edges':>6}{'collect':>8}{'CPU':>6}{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in rows:
        print(f"{s['backend']:<9}{s['repeat']:>5}{s['tasks']:>6.0f}{s['wall_ms']:>8.0f}{s['per_task_ms']:>9.1f}"
              f"{s['own_ms']:>7.1f}{s['step_ms']:>7.1f}{s['overhead_ms']:>9.1f}{s['spawn_ms']:>7.1f}{s['ratio']:>6.2f}"
              f"{s['overhead_beyond_step_ms']:>12.1f}{s['ratio_beyond_step']:>6.2f} |{s['isolated_ms']:>9.1f}"
              f"{s['launch_per_task_ms']:>7.1f}{s['notice_per_task_ms']:>7.1f}{s['handoff_per_task_ms']:>9.1f}{s['edges_per_task_ms']:>6.1f}"
              f"{s['collect_per_task_ms']:>8.1f}{s['server_cpu_per_task_ms']:>6.1f}{loads(s):>11}")
    print("own = `python3 -m kfp.dsl.executor_main` on the task's input, run directly; step = the whole compiled "
          "command run\ndirectly (its shells, the source written to a temp file, the same executor_main); "
          "overhead = per task - own;\nRATIO = overhead / a bare `python3 -c pass` spawn of the environment's "
          "python3 (the target: <= 0.5); beyond step/ratio:\nthe same against the whole command. Right of |: "
          "isolated = the whole command run directly under the server's\nisolation wrapper (as its launcher "
          "would start it); launch = spawn of that wrapper in the server; notice =\nprocess life in the server "
          "(launch -> exit noticed) - isolated; hand-off = exit noticed -> next launch (outputs, "
          "reconcile,\nthe next task's "
          "ExecutorInput); edges = wall - launch - life - hand-offs; CPU = the server's CPU time (all its threads,\n"
          "not the steps) during the run.")


def print_parallelfor(rows: list[dict[str, Any]]) -> None:
    print("\nIR ParallelFor (medians over repetitions; ms)")
    header = (f"{'backend':<9}{'reps':>5}{'slots':>6}{'peak':>5}{'wall':>8}{'slowest own':>12}{'slowest step':>13}"
              f"{'spawn':>7}{'RATIO':>6}{'direct':>8}{'wall/direct':>12}{'collect':>8}{'DB write':>9}{'CPU':>7}"
              f"{'load':>11}")
    print(header)
    print("-" * len(header))
    for s in rows:
        print(f"{s['backend']:<9}{s['repeat']:>5}{s['slots']:>6}{s['peak_running']:>5.0f}{s['wall_ms']:>8.0f}"
              f"{s['slowest_own_ms']:>12.1f}{s['slowest_step_ms']:>13.1f}{s['spawn_ms']:>7.1f}{s['ratio']:>6.2f}"
              f"{s['direct_ms']:>8.0f}{s['ratio_direct']:>12.2f}{s['collect_ms']:>8.1f}{s['db_write_ms']:>9.1f}"
              f"{s['server_cpu_ms']:>7.0f}{loads(s):>11}")
    print("RATIO = wall / (slowest task's whole command run directly + one bare spawn), as executor_bench's fan-out "
          "RATIO;\ndirect = the 30 whole commands run directly all at once (no server, no isolation): "
          "what the cores allow.")


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="chain,parallelfor", help="comma list of chain,parallelfor")
    parser.add_argument("--backends", default="sqlite", help="comma list of sqlite,postgres,mysql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL,
                        help="admin URL; the bench creates and drops its own database there")
    parser.add_argument("--kfp2-python", type=Path, default=REPO / ".venv-kfp2" / "bin" / "python",
                        help="a python with kfp 2.x, to compile the pipelines")
    parser.add_argument("--tasks", type=int, default=50, help="chain length")
    parser.add_argument("--width", type=int, default=30, help="ParallelFor width")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each pipeline per backend")
    parser.add_argument("--warmup-runs", type=int, default=1, help="untimed runs first (the first prepares the "
                        "step environment when --step-envs-dir has none)")
    parser.add_argument("--spawn-samples", type=int, default=5, help="bare python3 spawns per repetition")
    parser.add_argument("--wrapper", default="kfp-step", help="the server's step wrapper")
    parser.add_argument("--isolation", default="auto", help="the server's step isolation")
    parser.add_argument("--wide-slots", type=int, default=32, help="parallelfor: also with this many slots (0: skip)")
    parser.add_argument("--step-envs-dir", type=Path,
                        default=Path.home() / ".cache" / "kfp-backend-bench" / "step-envs",
                        help="the step environments (kept between invocations: made once); not under /tmp, "
                        "which a step's private /tmp hides")
    parser.add_argument("--scratch", type=Path, default=None, help="where direct runs write (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.step_envs_dir.resolve().is_relative_to("/tmp"):
        # Steps get a private /tmp: an environment under the host's would be hidden from them, and their
        # `python3` would be whatever else PATH finds (see bench/results.md, 2026-12-07 IR section).
        raise SystemExit(f"--step-envs-dir {args.step_envs_dir}: a step's private /tmp hides it; choose another")
    args.scratch = args.scratch or delete_later(Path(tempfile.mkdtemp(prefix="kfpb-ir-direct-")))

    only = set(args.only.split(","))
    real = python3_paths()[1]
    print(f"cores: {os.cpu_count()}; load: {os.getloadavg()}; step environments: {args.step_envs_dir}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {"chain": [], "parallelfor": []}
    try:
        manifests = compile_pipelines(args.kfp2_python, args.tasks, args.width)
        for kind in [k for k in args.backends.split(",") if k]:
            with fresh_database(kind, args) as backend:
                configurations = [(0, "chain"), (0, "parallelfor")]
                if args.wide_slots:
                    configurations.append((args.wide_slots, "parallelfor"))
                for slots, group in itertools.groupby([c for c in configurations if c[1] in only], lambda c: c[0]):
                    server = InProcessServer(backend.url, slots, args.wrapper, args.isolation,
                                             step_envs_dir=str(args.step_envs_dir))
                    try:
                        for _, what in group:
                            print(f"[{kind}] {what}, {server.isolation} isolation, {args.wrapper} wrapper, "
                                  f"{server.settings.effective_max_parallel_steps} slots ...", flush=True)
                            bench = bench_chain if what == "chain" else bench_parallelfor
                            outcome = bench(server, manifests[what], args, real)
                            results[what].append({"backend": kind, "isolation": server.isolation, **outcome})
                    finally:
                        server.close()
    finally:
        delete_scratch()
    if results["chain"]:
        print_chain(results["chain"])
    if results["parallelfor"]:
        print_parallelfor(results["parallelfor"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
