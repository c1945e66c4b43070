"""One thread per active run: reconcile, start steps, collect what they produced, write it down.

The run's state lives in the database; the driver only holds what it can rebuild from there, so a
driver that dies is replaced by another that carries on from the rows (see docs/execution.md, "Restarts
and crashes"). A pass launches a whole wave of steps; its node changes are written behind the driver by
a writer thread (`_ProgressWriter`); the run's final state is written synchronously, after the rest.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from kfp_backend.executor import ir_steps
from kfp_backend.executor.artifacts import ArtifactStore
from kfp_backend.executor.driver_messages import (
    DriverMessage,
    RunDeleted,
    Shutdown,
    StepExited,
    StepPlaced,
    Terminate,
    Wake,
)
from kfp_backend.executor.graph_walk import (
    DEADLINE_MESSAGE,
    RELAUNCH_NOTE,
    WORKFLOW_NAMESPACE,
    RunOperator,
    rfc3339,
)
from kfp_backend.executor.ir_steps import IrStep, StepEnvironment
from kfp_backend.executor.ir_walk import PipelineRunOperator, load_pipeline_run
from kfp_backend.executor.launcher import (
    RemoteSteps,
    StepHandle,
    StepIO,
    StepLauncher,
    StepRecovery,
    StepResult,
    StepSpec,
)
from kfp_backend.executor.step_cache import StepCache
from kfp_backend.executor.step_io import CollectedStepFiles, LocalStepFiles, StepFiles, place_inputs
from kfp_backend.observability import StepWaits
from kfp_backend.services.execution_state import ClaimedRun, ExecutionStateService, NodeRow, node_row
from kfp_backend.store.states import ERROR, FAILED, RUNNING, SUCCEEDED
from kfp_backend.workflow import expressions as ex
from kfp_backend.workflow.compile import compile_workflow
from kfp_backend.workflow.errors import WorkflowError
from kfp_backend.workflow.graph import Template, WorkflowGraph
from kfp_backend.workflow.ir.document import is_pipeline_spec
from kfp_backend.workflow.ir.model import PipelineSpec

log = logging.getLogger(__name__)
METRICS_ARTIFACT = "mlpipeline-metrics"
# A template (or the workflow) annotation naming the queue of a remote launcher its steps go to.
QUEUE_ANNOTATION = "kfp-backend.io/queue"
HOSTNAME = socket.gethostname()


class DriverHost(Protocol):
    """What a run driver needs from the executor that runs it: step slots shared with the other drivers,
    where its steps' directories are, and what is done with a step's log, its metrics and a deleted run."""

    def try_acquire_slot(self, driver: RunDriver) -> bool:
        """A slot for one step; False: none free now (the driver is posted `Wake` when one is freed)."""

    def claim_slot_unconditionally(self, driver: RunDriver) -> None:
        """An adopted step already runs: count it even if that overbooks the slots for a while."""

    def release_slot(self, driver: RunDriver) -> None: ...

    def driver_done(self, driver: RunDriver) -> None:
        """The driver's thread is ending."""

    def step_dir(self, run_id: str, node_id: str) -> Path: ...

    def finish_step_log(self, run_id: str, node: dict) -> None:
        """Cap the log of a step that has ended and, with a store that keeps logs, store it there
        (its key in `node["_log_key"]`)."""

    def report_metrics(self, run_id: str, node_id: str, data: bytes) -> None:
        """A step's mlpipeline-metrics file."""

    def remove_run_files(self, run_id: str) -> None:
        """A deleted run's step directories and stored artifacts."""


class _Launch(Enum):
    """How `start_pod` got a step going when it has no handle (yet)."""

    ALREADY_ENDED = "already ended"  # its recorded exit was found: a StepExited message is on its way
    IN_WAVE = "in wave"  # queued: it starts with the pass's wave


class _ProgressWriter:
    """Writes a run's progress behind its driver: one transaction at a time, later changes merged in.

    The driver hands over snapshots (node rows serialized on the driver thread); `lost` turns True when
    a write finds the run is no longer this driver's, `error` holds an exception a write raised. Either
    wakes the driver up. `drain` waits until everything handed over is written."""

    def __init__(self, state: ExecutionStateService, run_id: str, driver_id: str, wake: Callable[[], None]) -> None:
        self._state = state
        self._run_id = run_id
        self._driver_id = driver_id
        self._wake = wake  # wakes the driver up
        self._cond = threading.Condition()
        self._inserted: dict[str, NodeRow] = {}
        self._updated: dict[str, NodeRow] = {}
        self._status: tuple[dict, str] | None = None  # (workflow status, run status) to write next
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.lost = False
        self.error: BaseException | None = None

    def submit(self, inserted: list[NodeRow], updated: list[NodeRow], workflow_status: dict, status: str) -> None:
        with self._cond:
            for row in inserted:
                self._inserted[row[0]] = row
            for row in updated:
                if row[0] in self._inserted:
                    self._inserted[row[0]] = row  # not written yet: insert its latest state
                else:
                    self._updated[row[0]] = row
            self._status = (workflow_status, status)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"{threading.current_thread().name}-writer", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def take(self) -> tuple[list[NodeRow], list[NodeRow]]:
        """What was handed over but not written yet (the caller writes it): used for the final write."""
        with self._cond:
            inserted, updated = list(self._inserted.values()), list(self._updated.values())
            self._inserted, self._updated, self._status = {}, {}, None
            return inserted, updated

    def drain(self) -> None:
        with self._cond:
            while self._busy or (self._status is not None and self.error is None and not self.lost):
                self._cond.wait()

    def close(self) -> None:
        """Stop after the write in flight; what is still pending is dropped (see `take`)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._busy:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._status is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                assert self._status is not None
                inserted, updated = list(self._inserted.values()), list(self._updated.values())
                (workflow_status, status), self._status = self._status, None
                self._inserted, self._updated = {}, {}
                self._busy = True
            owned, error = True, None
            try:
                owned = self._state.save_progress(
                    self._run_id, self._driver_id, inserted=inserted, updated=updated,
                    workflow_status=workflow_status, status=status, finished=False,
                )
            except Exception as exc:  # raised again on the driver thread
                error = exc
            with self._cond:
                self._busy = False
                if error is not None:
                    self.error = error
                if not owned:
                    self.lost = True
                self._cond.notify_all()
            if error is not None or not owned:
                self._wake()
                return


class RunDriver:
    def __init__(
        self,
        claimed: ClaimedRun,
        *,
        host: DriverHost,
        launcher: StepLauncher,
        state: ExecutionStateService,
        artifacts: ArtifactStore,
        driver_id: str,
        heartbeat_seconds: float,
        step_environment: StepEnvironment | None = None,
        step_cache: StepCache | None = None,
    ) -> None:
        self.host = host
        # KFP v2 steps: the environment (PATH, say) each step's programs are found in; None: the server's.
        self.step_environment = step_environment
        self.step_cache = step_cache  # KFP v2 tasks' cached outputs; None: no caching
        self.launcher = launcher
        # Adopting steps launched by an earlier process, when the launcher can (see StepRecovery).
        self.recovery: StepRecovery | None = launcher if isinstance(launcher, StepRecovery) else None
        # Steps run on other machines: their files are moved there, their logs are in the store.
        self.remote: RemoteSteps | None = launcher if isinstance(launcher, RemoteSteps) else None
        self.state = state
        self.artifacts = artifacts
        self.driver_id = driver_id
        self.heartbeat_seconds = heartbeat_seconds
        self.run_id = claimed.run_id
        self.claimed = claimed
        self.events: queue.Queue[DriverMessage] = queue.Queue()
        self.handles: dict[str, StepHandle] = {}
        self.templates_by_node: dict[str, Template | IrStep] = {}
        self.specs_by_node: dict[str, StepSpec] = {}
        self._wave: list[tuple[dict, StepSpec, Callable[[StepResult], None]]] = []  # steps to start after the pass
        # Nodes whose process was lost (vanished, or its host is gone) -> what happened: started again.
        self._lost_processes: dict[str, str] = {}
        self.writer = _ProgressWriter(state, self.run_id, driver_id, lambda: self.post(Wake()))
        self._last_status: dict | None = None  # the workflow status last handed to the writer
        self.waiting_for_slot = False
        self.step_waits = StepWaits()  # the launch latency and queued-steps metrics
        self.operator: RunOperator | PipelineRunOperator | None = None
        self.graph: WorkflowGraph | None = None
        self.pipeline_spec: PipelineSpec | None = None  # a KFP v2 run's spec (its walk is PipelineRunOperator)
        self.workflow_name = ""
        self.workflow_queue = ""  # the workflow's queue annotation: its steps' queue unless a template names one
        self._deleted = False
        self._shutdown = False
        self._thread = threading.Thread(target=self._main, name=f"run-{self.run_id[:8]}", daemon=True)

    # ------------------------------------------------------------ called from other threads

    def start(self) -> None:
        self._thread.start()

    def post(self, event: DriverMessage) -> None:
        self.events.put(event)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ------------------------------------------------------------ the driver thread

    def _main(self) -> None:
        try:
            self._drive()
        except Exception as exc:  # a bug must end the run honestly, not leave it "Running"
            log.exception("run %s: driver failed", self.run_id)
            self._fail_run(f"internal error while executing the run: {type(exc).__name__}: {exc}")
        finally:
            self.writer.close()  # already closed on every way out; never leave its thread behind
            for _ in self._wave:  # queued, never started (the driver failed in the middle of a pass)
                self.host.release_slot(self)
            self._wave.clear()
            for node_name in list(self.handles):
                self.host.release_slot(self)
                del self.handles[node_name]
            self.step_waits.close()
            self.host.driver_done(self)

    def _drive(self) -> None:
        operator = self._make_operator(json.loads(self.claimed.workflow))
        if operator is None:
            return
        status = self.claimed.workflow_status
        resumed = bool(self.claimed.nodes or status.get("startedAt"))
        log.info("run %s (%s) %s", self.run_id, self.claimed.name, "resumed" if resumed else "started")
        self._adopt_running_steps(operator)
        if self.claimed.terminate_requested:
            operator.request_stop("terminate")
        next_heartbeat = time.monotonic() + self.heartbeat_seconds
        while True:
            operator.reconcile()
            while self._launch_wave(operator):  # some could not start: their nodes ended, look again
                operator.reconcile()
            if operator.finished:
                self._flush_final(operator)
                return
            self._flush(operator)
            timeout = max(0.0, next_heartbeat - time.monotonic())
            if operator.next_wake is not None:
                timeout = min(timeout, max(0.0, operator.next_wake - time.time()))
            try:
                event: DriverMessage | None = self.events.get(timeout=timeout)
            except queue.Empty:
                event = None
            while event is not None:
                self._handle(event, operator)
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    event = None
            if self.writer.error is not None:
                raise self.writer.error
            if self.writer.lost:  # another executor took the run over
                self._abandon()
                return
            if self._deleted:
                self._abandon()
                return
            if self._shutdown:
                self._flush(operator)
                self.writer.drain()
                self.writer.close()
                return
            if time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + self.heartbeat_seconds
                beat = self.state.heartbeat(self.run_id, self.driver_id)
                if beat is None or not beat[0]:
                    # The run was deleted, or another executor took it over: stop touching it.
                    self._abandon(kill=beat is None)
                    return
                if beat[1]:
                    operator.request_stop("terminate")

    def _make_operator(self, document: Any) -> RunOperator | PipelineRunOperator | None:
        """The walk of the run: Argo's for a workflow, the pipeline spec's for a KFP v2 run (None: the run
        cannot be read, and has been failed)."""
        status = self.claimed.workflow_status
        started_at = _parse_time(status.get("startedAt")) or time.time()
        operator: RunOperator | PipelineRunOperator
        if is_pipeline_spec(document):
            try:
                run = load_pipeline_run(document, self.run_id)
            except WorkflowError as exc:
                self._fail_run(f"invalid pipeline spec: {exc}", phase=ERROR)
                return None
            self.workflow_name = run.name
            self.pipeline_spec = run.spec
            operator = PipelineRunOperator(run, run_id=self.run_id, nodes=self.claimed.nodes, host=self,
                                           started_at=started_at)
        else:
            try:
                graph = compile_workflow(document)
            except WorkflowError as exc:
                self._fail_run(f"invalid workflow: {exc}", phase=ERROR)
                return None
            self.workflow_name = document.get("metadata", {}).get("name") or graph.name
            annotations = (document.get("metadata") or {}).get("annotations") or {}
            queue = annotations.get(QUEUE_ANNOTATION) if isinstance(annotations, dict) else None
            self.workflow_queue = queue if isinstance(queue, str) else ""
            self.graph = graph
            operator = RunOperator(
                graph, workflow_name=self.workflow_name, run_id=self.run_id, nodes=self.claimed.nodes,
                host=self, started_at=started_at,
            )
        self.operator = operator
        return operator

    def _handle(self, event: DriverMessage, operator: RunOperator | PipelineRunOperator) -> None:
        if isinstance(event, StepExited):
            self.handles.pop(event.node_name, None)
            self.host.release_slot(self)
            node = operator.nodes.get(event.node_name)
            if node is None:
                return
            if event.result.host:  # a remote worker's name
                node["hostNodeName"] = event.result.host
            self.host.finish_step_log(self.run_id, node)  # before mark_collected: a restart collecting again caps it
            phase, message, outputs = self._collect(node, event.result)
            operator.pod_exited(event.node_name, phase, message, outputs)
            spec = self.specs_by_node.pop(event.node_name, None)
            if spec is not None and self.recovery is not None:
                self.recovery.mark_collected(spec)
        elif isinstance(event, StepPlaced):
            node = operator.nodes.get(event.node_name)
            if node is not None and node.get("phase") == RUNNING and node.get("hostNodeName") != event.host:
                node["hostNodeName"] = event.host
                operator.updated[node["id"]] = node
        elif isinstance(event, Terminate):
            operator.request_stop("terminate")
        elif isinstance(event, RunDeleted):
            self._deleted = True
        elif isinstance(event, Shutdown):
            self._shutdown = True

    def _flush(self, operator: RunOperator | PipelineRunOperator) -> None:
        """Hand this pass's changes to the writer (no waiting); nothing when nothing changed."""
        inserted, updated = operator.take_changes()
        status = operator.workflow_status()
        if not inserted and not updated and status == self._last_status:
            return
        self._last_status = status
        self.writer.submit([node_row(n) for n in inserted], [node_row(n) for n in updated], status, RUNNING)

    def _flush_final(self, operator: RunOperator | PipelineRunOperator) -> None:
        """The run's final state, written after everything before it."""
        self.writer.drain()
        self.writer.close()
        if self.writer.error is not None:
            raise self.writer.error
        pending_inserted, pending_updated = self.writer.take()
        inserted, updated = operator.take_changes()
        rows_inserted = {row[0]: row for row in pending_inserted}
        rows_updated = {row[0]: row for row in pending_updated}
        for node in inserted:
            rows_inserted[node["id"]] = node_row(node)
        for node in updated:
            if node["id"] in rows_inserted:
                rows_inserted[node["id"]] = node_row(node)
            else:
                rows_updated[node["id"]] = node_row(node)
        if self.writer.lost or not self.state.save_progress(
            self.run_id, self.driver_id, inserted=list(rows_inserted.values()),
            updated=list(rows_updated.values()), workflow_status=operator.workflow_status(), status=operator.phase,
            finished=True,
        ):
            self._abandon()
            return
        self._log_finished(operator.phase, operator.started_at)

    def _abandon(self, kill: bool = True) -> None:
        self.writer.close()
        for handle in list(self.handles.values()):
            if kill:
                self.launcher.terminate(handle)
        if self._deleted:
            for handle in list(self.handles.values()):
                handle.wait(10)
            self.host.remove_run_files(self.run_id)

    def _fail_run(self, message: str, phase: str = ERROR) -> None:
        now = time.time()
        status = {"phase": phase, "startedAt": rfc3339(now), "finishedAt": rfc3339(now), "message": message}
        nodes: list[dict] = []
        if self.operator is not None:
            for handle in list(self.handles.values()):
                self.launcher.terminate(handle)
            status = {**self.operator.workflow_status(), **status, "startedAt": rfc3339(self.operator.started_at)}
            nodes = [node_row(n) for n in self.operator.take_changes()[0]]
        self.writer.close()
        nodes = self.writer.take()[0] + nodes
        try:
            if not self.state.save_progress(
                self.run_id, self.driver_id, inserted=nodes, updated=[], workflow_status=status,
                status=phase, finished=True,
            ):
                return  # no longer this driver's run
        except Exception:
            log.exception("run %s: could not record the failure", self.run_id)
            return
        self._log_finished(phase, self.operator.started_at if self.operator is not None else now, message)

    def _log_finished(self, phase: str, started_at: float, message: str = "") -> None:
        log.info("run %s (%s) finished: %s after %.1f s%s", self.run_id, self.claimed.name, phase,
                 max(0.0, time.time() - started_at), f" ({message})" if message else "")

    # ------------------------------------------------------------ StepHost

    def start_pod(self, node: dict, template: Template | IrStep) -> str | None:
        name = node["name"]
        self.step_waits.ready(name)
        if not self.host.try_acquire_slot(self):
            self.step_waits.queued(name)
            return ""
        self.step_waits.slotted(name)
        try:
            spec = self._step_spec(node, template, prepare=True)
        except ex.UnresolvedPlaceholder as exc:
            self.host.release_slot(self)
            self.step_waits.dropped(name)
            return f"Unable to resolve: {exc}"
        except ir_steps.StepPreparationError as exc:
            self.host.release_slot(self)
            self.step_waits.dropped(name)
            return f"could not prepare the step: {exc}"
        try:
            existing = spec.work_dir.exists()
            handle = self._find_unrecorded_launch(node, spec) if existing else None
            if handle is None:
                lost = self._lost_processes.pop(name, None)
                if lost is not None:
                    self._note_relaunch(node, spec, lost)
                elif existing:
                    shutil.rmtree(spec.work_dir)  # an earlier attempt (a retried run) or a launch that never ran
                self._place_inputs(node, template, spec)
                # Started with the rest of this pass's wave, once the pass is over (`_launch_wave`).
                self._wave.append((node, spec, lambda result: self.post(StepExited(name, result))))
                handle = _Launch.IN_WAVE
        except Exception as exc:
            self.host.release_slot(self)
            self.step_waits.dropped(name)
            log.exception("run %s: could not start %s", self.run_id, name)
            return f"failed to start the step: {exc}"
        if isinstance(handle, StepHandle):
            self.handles[name] = handle
            node["_pid"] = handle.pid
        if handle is not _Launch.IN_WAVE:
            self.step_waits.dropped(name)  # launched by an earlier driver: no launch of ours to time
        if self.remote is not None:
            # Its worker uploads the log as it goes; its host is known once a worker has taken it.
            node["_log_key"] = self.remote.log_key(spec)
            for private in ("_work_dir", "_log_path", "hostNodeName"):
                node.pop(private, None)
        else:
            node["_work_dir"] = str(spec.work_dir)
            node["_log_path"] = str(self.launcher.log_path(spec))
            node.pop("_log_key", None)  # an earlier attempt's stored log (a retried run)
            node["hostNodeName"] = HOSTNAME
        self.templates_by_node[name] = template
        self.specs_by_node[name] = spec
        return None

    def _launch_wave(self, operator: RunOperator | PipelineRunOperator) -> bool:
        """Start the steps the pass queued, all at once; True if some could not be started."""
        if not self._wave:
            return False
        wave, self._wave = self._wave, []
        outcomes = self.launcher.start_many([(spec, on_exit) for _, spec, on_exit in wave])
        failed = False
        for (node, _, _), outcome in zip(wave, outcomes, strict=True):
            if isinstance(outcome, StepHandle):
                self.handles[node["name"]] = outcome
                self._follow_placement(node["name"], outcome)
                node["_pid"] = outcome.pid
                self.step_waits.started(node["name"])
                continue
            failed = True
            self.step_waits.dropped(node["name"])
            self.host.release_slot(self)
            self.specs_by_node.pop(node["name"], None)
            log.error("run %s: could not start %s: %s", self.run_id, node["name"], outcome)
            operator.pod_exited(node["name"], ERROR, f"failed to start the step: {outcome}", None)
        return failed

    def _find_unrecorded_launch(self, node: dict, spec: StepSpec) -> StepHandle | _Launch | None:
        """A launch of this very node that an earlier driver made but never got into the database (it
        died between the two): adopt the process, or take the exit it recorded. None: start the step."""
        launcher = self.recovery
        if launcher is None or launcher.was_collected(spec):
            return None
        pid = launcher.launched_pid(spec)
        if pid is None:
            return None
        name = node["name"]
        handle = launcher.adopt(spec, pid, lambda result: self.post(StepExited(name, result)))
        if handle is not None:
            log.info("run %s: adopted %s (pid %s), launched before a restart", self.run_id, name, pid)
            return handle
        recorded = launcher.recorded_result(spec)
        if recorded is not None and recorded.vanished:
            self._lost_processes.setdefault(name, _vanished(pid))
        if recorded is None or recorded.vanished:
            return None
        node["_pid"] = pid
        self.post(StepExited(name, recorded))
        return _Launch.ALREADY_ENDED

    def _follow_placement(self, name: str, handle: StepHandle) -> None:
        """A remote step's node names its worker as soon as one takes it (Argo: once the pod is scheduled)."""
        if self.remote is not None:
            handle.on_placed = lambda host: self.post(StepPlaced(name, host))

    def _note_relaunch(self, node: dict, spec: StepSpec, lost: str) -> None:
        """Say in the node's message and in its log that the step starts again, and why. The earlier
        attempt's scratch goes; its log stays, and the new attempt's output follows the note."""
        note = f"relaunched: {lost}"
        node[RELAUNCH_NOTE] = note
        node["message"] = note
        if self.remote is not None:  # the lost attempt's log is in the store; nothing of it is here
            log.warning("run %s: %s %s", self.run_id, node["name"], note)
            return
        log_path = self.launcher.log_path(spec)
        if spec.work_dir.exists():
            for entry in spec.work_dir.iterdir():
                if entry == log_path:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            # On a line of its own, after whatever the lost attempt wrote.
            start = b"\n" if log_file.tell() and not _ends_with_newline(log_path) else b""
            line = f"[kfp-backend {rfc3339(time.time())}] {note}; the step starts again\n"
            log_file.write(start + line.encode())
        log.warning("run %s: %s %s", self.run_id, node["name"], note)

    def cached_outputs(self, key: str) -> dict[str, Any] | None:
        return self.step_cache.get(key) if self.step_cache is not None else None

    def store_outputs(self, key: str, outputs: dict[str, Any], node_id: str) -> None:
        if self.step_cache is None:
            return
        try:
            self.step_cache.put(key, outputs, self.run_id, node_id)
        except OSError:
            log.exception("run %s: could not cache the outputs of %s", self.run_id, node_id)

    def kill_pod(self, node: dict) -> None:
        handle = self.handles.get(node["name"])
        if handle is not None:
            self.launcher.terminate(handle)

    # ------------------------------------------------------------ steps

    def _step_spec(self, node: dict, template: Template | IrStep, prepare: bool = False) -> StepSpec:
        """The step of a Pod node; `prepare`: about to launch it (a KFP v2 step's environment is made
        ready then; adopting or collecting a step needs only where its files are)."""
        if isinstance(template, IrStep):
            assert self.pipeline_spec is not None
            remote = self.remote is not None
            return ir_steps.step_spec(
                template, key=f"{self.run_id}/{node['id']}", work_dir=self.host.step_dir(self.run_id, node["id"]),
                environment=self.step_environment if prepare and not remote else None,
                output_parameters=list(self.pipeline_spec.component(template.component).outputs.parameters),
                prepare_remotely=remote and self.step_environment is not None,
            )
        assert template.container is not None
        parameters = {p["name"]: p.get("value", "") for p in (node.get("inputs") or {}).get("parameters", [])}
        workflow_scope = {
            "workflow.name": self.workflow_name,
            "workflow.namespace": WORKFLOW_NAMESPACE,
            "workflow.uid": self.run_id,
            "pod.name": node["id"],
        }
        assert self.operator is not None
        workflow_scope.update(self.operator.workflow_scope())
        scope = ex.template_scope(template, parameters, workflow_scope)
        container = template.container
        argv = [ex.substitute(part, scope) for part in (*container.command, *container.args)]
        env = {name: ex.substitute(value, scope) for name, value in container.env}
        field_values = {"metadata.name": node["id"], "metadata.namespace": WORKFLOW_NAMESPACE}
        for name, field_path in container.field_refs:
            env[name] = field_values.get(field_path, "")
        paths = [a.path for a in template.inputs_artifacts if a.path]
        paths += [p.path for p in template.outputs_parameters if p.path]
        paths += [a.path for a in template.outputs_artifacts if a.path]
        queue = template.annotations.get(QUEUE_ANNOTATION) or self.workflow_queue
        return StepSpec(
            key=f"{self.run_id}/{node['id']}",
            argv=argv,
            env=env,
            work_dir=self.host.step_dir(self.run_id, node["id"]),
            private_paths=sorted(set(paths)),
            deadline_seconds=template.active_deadline_seconds,
            working_dir=container.working_dir,
            io=self._step_io(node, template),
            queue=queue,
        )

    def _step_io(self, node: dict, template: Template) -> StepIO:
        """A v1 step's inputs (literal or stored), its outputs' keys, and the files read after it (output
        parameters, the metrics file)."""
        given = {a["name"]: a for a in (node.get("inputs") or {}).get("artifacts", [])}
        inputs: list[tuple[str, str]] = []
        raw: list[tuple[str, str]] = []
        for decl in template.inputs_artifacts:
            artifact = given.get(decl.name)
            if artifact is None or not decl.path:
                continue
            if "raw" in artifact:
                raw.append((decl.path, artifact["raw"].get("data", "")))
            elif "s3" in artifact:
                inputs.append((artifact["s3"]["key"], decl.path))
        # Argo's key is artifacts/<workflow>/<pod>/<name>.tgz; the run id in its place lets a deleted run's
        # artifacts go with one prefix.
        outputs = tuple((a.path, f"artifacts/{self.run_id}/{node['id']}/{a.name}.tgz")
                        for a in template.outputs_artifacts if a.path)
        files = [p.path for p in template.outputs_parameters if p.path]
        files += [a.path for a in template.outputs_artifacts if a.path and a.name == METRICS_ARTIFACT]
        return StepIO(inputs=tuple(inputs), raw_inputs=tuple(raw), outputs=outputs, files=tuple(files))

    def _place_inputs(self, node: dict, template: Template | IrStep, spec: StepSpec) -> None:
        """What `spec.io` says is done before the step, here (a remote step's worker does it on its side).
        The directories of the outputs (hand-written ContainerOps expect them, as in an image) are made by
        the launcher's sandbox plan, with those of every other declared path."""
        if self.remote is None:
            place_inputs(spec.io, lambda path: self.launcher.host_path(spec, path), self.artifacts)

    def _step_files(self, spec: StepSpec, result: StepResult) -> StepFiles:
        if result.collected is not None:
            return CollectedStepFiles(result.collected)
        return LocalStepFiles(lambda path: self.launcher.host_path(spec, path), self.artifacts)

    def _collect(self, node: dict, result: StepResult) -> tuple[str, str, dict | None]:
        """The node's phase, message and outputs from its exit and the files it left."""
        template = self.templates_by_node.get(node["name"]) or self._recipe(node)
        assert template is not None
        spec = self.specs_by_node.get(node["name"]) or self._step_spec(node, template)
        files = self._step_files(spec, result)
        if isinstance(template, IrStep):
            assert self.pipeline_spec is not None
            return ir_steps.collect(
                template, self.pipeline_spec.component(template.component), result,
                bool(node.get("_stopping")), files,
            )
        outputs: dict[str, Any] = {}
        if result.exit_code is not None:
            outputs["exitCode"] = str(result.exit_code)
        if node.get("_stopping") or result.terminated:
            phase, message = FAILED, DEADLINE_MESSAGE
        elif result.deadline_exceeded:
            phase, message = FAILED, result.message or "Pod was active on the node longer than the specified deadline"
        elif result.vanished:
            phase, message = ERROR, "the step's process vanished without an exit code (was the server killed?)"
        elif result.exit_code != 0:
            phase, message = FAILED, result.message or f"Error (exit code {result.exit_code})"
        else:
            phase, message = SUCCEEDED, ""
        if phase == SUCCEEDED:
            parameters = []
            for decl in template.outputs_parameters:
                if not decl.path:
                    continue
                data = files.read(decl.path)
                if data is not None:
                    value = ex.parameter_value_from_file(data)
                elif decl.default is not None:
                    value = decl.default
                else:
                    phase, message = ERROR, (
                        f"failed to read output parameter '{decl.name}' from {decl.path}: no such file"
                    )
                    break
                parameters.append({"name": decl.name, "value": value, "valueFrom": {"path": decl.path}})
            if parameters:
                outputs["parameters"] = parameters
        artifacts = []
        for decl in template.outputs_artifacts:
            if not decl.path:
                continue
            key = f"artifacts/{self.run_id}/{node['id']}/{decl.name}.tgz"  # as in `_step_io`
            if not files.store(decl.path, key):
                if phase == SUCCEEDED and not decl.optional:
                    phase = ERROR
                    message = f"failed to save output artifact '{decl.name}': {decl.path} does not exist"
                continue
            artifacts.append({"name": decl.name, "path": decl.path, "s3": {"key": key}})
            if decl.name == METRICS_ARTIFACT:
                data = files.read(decl.path)
                if data is not None:
                    self.host.report_metrics(self.run_id, node["id"], data)
        if artifacts:
            outputs["artifacts"] = artifacts
        return phase, message, outputs or None

    def _recipe(self, node: dict) -> Template | IrStep | None:
        """What a Pod node runs, from the run's graph or (KFP v2) the step kept on the node."""
        if self.pipeline_spec is not None:
            raw = node.get("_ir_step")
            return IrStep.from_json(raw) if isinstance(raw, dict) else None
        assert self.graph is not None
        template = self.graph.templates.get(node["templateName"])
        return template if template is not None and template.container is not None else None

    def _adopt_running_steps(self, operator: RunOperator | PipelineRunOperator) -> None:
        launcher = self.recovery
        for node in operator.running_pods():
            template = self._recipe(node)
            if template is None:
                continue
            spec = self._step_spec(node, template)
            self.templates_by_node[node["name"]] = template
            self.specs_by_node[node["name"]] = spec
            name = node["name"]
            handle = None
            pid = node.get("_pid")
            # A remote step's record (its dispatch) is not tied to a host: any driver takes it back.
            ours = self.remote is not None or (pid and node.get("hostNodeName") == HOSTNAME)
            if ours and launcher is not None:
                self.host.claim_slot_unconditionally(self)
                handle = launcher.adopt(spec, int(pid or 0),
                                        lambda result, name=name: self.post(StepExited(name, result)))
                if handle is not None:
                    self.handles[name] = handle
                    self._follow_placement(name, handle)
                    continue
                recorded = launcher.recorded_result(spec)
                if recorded is not None and not recorded.vanished:
                    self.post(StepExited(name, recorded))
                    continue
                self.host.release_slot(self)
            # The process is gone without a trace (or ran on another machine): start the step again.
            host = node.get("hostNodeName")
            if self.remote is not None:
                self._lost_processes[name] = "its dispatch to a worker was lost"
            elif host and host != HOSTNAME:
                self._lost_processes[name] = f"its process on host {host} was lost"
            else:
                self._lost_processes[name] = _vanished(pid)
            node.pop("_pid", None)
            operator.pod_lost(node)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def _vanished(pid: object) -> str:
    which = f" (pid {pid})" if pid else ""
    return f"its process{which} vanished without an exit code (killed, or the host restarted)"


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None

