"""Turning due job slots into runs, exactly once: one transaction locks the due jobs and writes
their runs, progress and job_fires rows (the exactly-once guard), optionally written ahead and held
until the due second. See docs/scheduling.md ("Firing, exactly once").
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kfp_backend.config import Settings
from kfp_backend.observability import SCHEDULER_FIRE_LAG, observe_lag
from kfp_backend.scheduler.triggers import CronParser, Progress, Trigger, next_slot
from kfp_backend.services.errors import ApiError
from kfp_backend.services.pipeline_specs import is_ir_template
from kfp_backend.services.references import (
    Relationship,
    ResourceKey,
    ResourceReference,
    ResourceType,
    encode_references,
)
from kfp_backend.services.run_manifest import runtime_workflow, substitute_macros
from kfp_backend.services.run_rows import new_manifest_row, new_run_row
from kfp_backend.services.runs import RunExecution
from kfp_backend.services.schedule_state import Job, ScheduleStateService, ScheduleTransaction, SlotAlreadyFired
from kfp_backend.services.typed_parameters import parameter_values, stored_parameters
from kfp_backend.store.states import JOB_ENABLED, JOB_RUNNING, JOB_SUCCEEDED
from kfp_backend.workflow.manifest import WorkflowError, parse_workflow

log = logging.getLogger(__name__)

SWF_NAME_LENGTH = 25
SWF_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes generateName's
SWF_SUFFIX_LENGTH = 5
LABEL_PREFIX = "scheduledworkflows.kubeflow.org/"
LABEL_SWF_NAME = LABEL_PREFIX + "scheduledWorkflowName"
LABEL_EPOCH = LABEL_PREFIX + "workflowEpoch"
LABEL_INDEX = LABEL_PREFIX + "workflowIndex"
LABEL_OWNED = LABEL_PREFIX + "isOwnedByScheduledWorkflow"
# A job at its max_concurrency is looked at again this often (its slot waits, it is not skipped).
BLOCKED_RECHECK_SECONDS = 1
# A job whose manifest cannot be turned into a run is retried this often (and logged each time).
BROKEN_RETRY_SECONDS = 60
# Catch-up fires of one job in one transaction; the rest follow in the next one.
MAX_FIRES_PER_JOB = 50
# stage_seconds looks at this many of the latest firing transactions.
STAGE_HISTORY = 5
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]")

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def swf_name(job_name: str, job_id: str) -> str:
    """The ScheduledWorkflow name upstream gives a job: its name lower-cased, characters outside
    [a-z0-9-] deleted, cut to 25 (`job-` if nothing is left), plus generateName's 5 random
    characters, here derived from the job id so every scheduler process computes the same name."""
    base = _INVALID_NAME_CHARS.sub("", job_name.lower())[:SWF_NAME_LENGTH] or "job-"
    digest = hashlib.sha256(job_id.encode()).digest()
    suffix = "".join(SWF_SUFFIX_ALPHABET[b % len(SWF_SUFFIX_ALPHABET)] for b in digest[:SWF_SUFFIX_LENGTH])
    return base + suffix


def fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def fired_run_name(swf: str, index: int) -> str:
    """`<swf-name>-<index>-<fnv32a(<swf-name>-<index>) as decimal>`, the workflow name upstream."""
    stem = f"{swf}-{index}"
    return f"{stem}-{fnv32a(stem)}"


@dataclass(frozen=True)
class FiredRun:
    job_id: str
    run_id: str
    run_name: str
    scheduled_at: int
    index: int
    fired_at_ms: int
    job_name: str = ""


@dataclass
class FireResult:
    fired: list[FiredRun] = field(default_factory=list)
    examined: int = 0
    # A job is still due after this pass (a catch-up backlog): fire again right away.
    still_due: bool = False


class IrRunDocument(Protocol):
    """The seam for firing KFP v2 pipeline specs (IR): run creation's function that makes the runtime document
    of one run of an IR spec (`spec_manifest` as the job stores it) with typed `parameter_values` and the job's
    `pipeline_root` ("" for the default), raising ApiError for values the spec refuses: services/ir_run_manifest.py's
    `fired_ir_document`, handed to JobFiring by the wiring (scheduler/worker.py). Without one, IR jobs do not fire
    (they are broken, retried later)."""

    def __call__(
        self,
        spec_manifest: str,
        *,
        run_id: str,
        run_name: str,
        now: int,
        parameter_values: Mapping[str, Any],
        pipeline_root: str,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Template:
    """A job's runtime workflow with placeholders, and what every one of its runs shares. For an IR job
    (`typed` set) `text` is empty: each fire makes its document with the IR run creation function."""

    text: str
    spec_manifest: str
    service_account: str
    parameters: tuple[tuple[str, str], ...]
    swf: str
    references: str
    typed: tuple[tuple[str, Any], ...] | None = None
    pipeline_root: str = ""


@dataclass(frozen=True)
class _Ready:
    """One fire's rows, built (perhaps ahead of time) for a given `now`, slot and index."""

    now: int
    slot: int
    index: int
    fire: dict[str, Any]
    run: dict[str, Any]
    manifest: dict[str, Any]
    fired: FiredRun


class _Broken(Exception):
    """The job's manifest cannot be made into a run (logged; the job is retried later)."""


class _Abandoned(Exception):
    """A fire ahead of time was called off before its commit (rolled back)."""


def _status(job: Job, state: Progress, active_runs: int) -> str:
    """The status of an enabled job the scheduler has just looked at (see jobs_repo): `Enabled`, or for
    a one-off that has fired, `Running` while its run is active and `Succeeded` after."""
    if job.trigger_kind == "" and state.last_index >= 1:
        return JOB_RUNNING if active_runs > 0 else JOB_SUCCEEDED
    return JOB_ENABLED


class JobFiring:
    """Fires due jobs. `fire_due(now_ms)` is the scheduler's unit of work; it is safe to call from
    several processes at once (the row locks and the job_fires key decide)."""

    def __init__(
        self,
        state: ScheduleStateService,
        settings: Settings,
        *,
        execution: Callable[[], RunExecution | None] | None = None,
        ir_run_document: IrRunDocument | None = None,
        cron_parser: CronParser | None = None,
        clock_ms: Clock = wall_clock_ms,
        batch_size: int = 500,
        ahead_batch_size: int = 5000,
    ) -> None:
        self._state = state
        self._settings = settings
        self._execution = execution
        self._ir_run_document = ir_run_document
        self._cron_parser = cron_parser
        self._clock_ms = clock_ms
        self.batch_size = batch_size
        self.ahead_batch_size = ahead_batch_size
        self._stage_seconds: collections.deque[float] = collections.deque(maxlen=STAGE_HISTORY)
        self._templates: dict[str, _Template] = {}
        self._broken: dict[str, _Broken] = {}
        self._prepared: dict[str, _Ready] = {}
        self._token = f"@@{uuid.uuid4().hex}:"
        self._placeholder = re.compile(re.escape(self._token) + r"(\w+)@@")

    # -- the unit of work -----------------------------------------------------------------------------

    def fire_due(self, now_ms: int | None = None, *, job_ids: Sequence[str] | None = None) -> FireResult:
        """Fire every due slot of up to `batch_size` due jobs (those whose next_fire_at <= now)."""
        now_ms = self._clock_ms() if now_ms is None else now_ms
        try:
            result = self._fire(now_ms // 1000, job_ids, limit=self.batch_size)
        except SlotAlreadyFired:
            result = self._fire_one_by_one(now_ms, job_ids)
        self._notify(result.fired)
        return result

    def fire_ahead(self, at: int, hold: Callable[[int], bool], *, parts: int = 1) -> FireResult:
        """Fire the slots due at second `at` (still to come) so that their runs appear right then: lock
        the jobs due by `at` and write their runs and progress now, then `hold(at * 1000)`, which
        returns once the clock reaches it, and write the job_fires rows and commit. Nothing is visible
        before the commit, and the commit comes at `at` or later, so every run still exists only from
        its scheduled time on (and the job rows are locked only about as long as writing them takes).
        If `hold` returns False (this scheduler lost its lease or is stopping) everything is rolled
        back. `stage_seconds` says how long the writing before the hold takes.

        `parts` > 1 splits the jobs into that many disjoint parts (by id), each written by its own
        thread in its own transaction on its own connection, all held until `at`: PostgreSQL works on
        them in parallel (SQLite's writers take turns; the scheduler uses parts on PostgreSQL only).
        Each part commits on its own, all or nothing, so exactly-once holds as for one."""
        if parts <= 1:
            return self._fire_ahead_part(at, hold, None)
        results: list[FireResult | BaseException] = [FireResult()] * parts

        def work(k: int) -> None:
            try:
                results[k] = self._fire_ahead_part(at, hold, (k, parts))
            except BaseException as exc:  # raised below, in the caller's thread
                results[k] = exc

        threads = [threading.Thread(target=work, args=(k,), name=f"fire-ahead-{k}") for k in range(1, parts)]
        for thread in threads:
            thread.start()
        work(0)
        for thread in threads:
            thread.join()
        merged = FireResult()
        for result in results:
            if isinstance(result, BaseException):
                raise result
            merged.fired += result.fired
            merged.examined += result.examined
            merged.still_due = merged.still_due or result.still_due
        return merged

    def _fire_ahead_part(self, at: int, hold: Callable[[int], bool], part: tuple[int, int] | None) -> FireResult:
        try:
            result = self._fire(at, None, limit=max(self.batch_size, self.ahead_batch_size), hold=hold, part=part)
        except _Abandoned:
            return FireResult()
        except SlotAlreadyFired:
            result = self._fire_one_by_one(self._clock_ms(), None)
        self._notify(result.fired)
        return result

    def _fire_one_by_one(self, now_ms: int, job_ids: Sequence[str] | None) -> FireResult:
        """After a duplicate fire (another scheduler fired one of the slots): each job on its own."""
        log.warning("a slot was fired by another scheduler; firing these jobs one by one")
        result = FireResult()
        with self._state.transaction(write=False) as rows:
            ids = [job.id for job in rows.due_jobs(now_ms // 1000, limit=self.batch_size, job_ids=job_ids,
                                                   lock=False)]
        for job_id in ids:
            try:
                single = self._fire(now_ms // 1000, [job_id], limit=1)
            except SlotAlreadyFired:
                self._skip_fired_slot(job_id, now_ms)
                single = FireResult(still_due=True)
            result.fired += single.fired
            result.examined += 1
            result.still_due = result.still_due or single.still_due
        return result

    @property
    def stage_seconds(self) -> float:
        """The longest of the last few firing transactions that wrote runs, up to their job_fires rows
        (0 before the first): what a fire ahead of time should start at least that early for."""
        return max(self._stage_seconds, default=0.0)

    def next_wake(self) -> int | None:
        """The earliest next_fire_at of the enabled jobs (seconds), or None."""
        return self._state.earliest_next_fire()

    def forget(self, job_id: str) -> None:
        self._templates.pop(job_id, None)
        self._prepared.pop(job_id, None)

    # -- internals ------------------------------------------------------------------------------------

    def _fire(
        self,
        now: int,
        job_ids: Sequence[str] | None,
        *,
        limit: int,
        hold: Callable[[int], bool] | None = None,
        part: tuple[int, int] | None = None,
    ) -> FireResult:
        """One firing transaction at second `now` (see fire_due and fire_ahead)."""
        staged = time.monotonic()
        result = FireResult()
        fires: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        manifests: list[dict[str, Any]] = []
        progress: list[dict[str, Any]] = []
        with self._state.transaction() as rows:
            jobs = rows.due_jobs(now, limit=limit, job_ids=job_ids, part=part)
            if not jobs:
                return result
            result.examined = len(jobs)
            slots: dict[str, int | None] = {}
            for job in jobs:
                try:
                    slots[job.id] = next_slot(
                        Trigger.of_job(job), Progress(job.last_scheduled_at, job.last_index), now,
                        cron_parser=self._cron_parser,
                    )
                except Exception as exc:  # a trigger the Job API should have refused
                    log.error("job %s has an unusable trigger, it will not fire: %s", job.id, exc)
                    slots[job.id] = None
            due = [job for job in jobs if slots[job.id] is not None and slots[job.id] <= now]
            active = rows.active_run_counts([job.id for job in due])
            self._load_templates(rows, jobs)
            prepared = self._prepared
            for job in jobs:
                slot = slots[job.id]
                trigger = Trigger.of_job(job)
                state = Progress(job.last_scheduled_at, job.last_index)
                running = active.get(job.id, 0)
                fired_here = 0
                next_fire_at = slot
                while slot is not None and slot <= now:
                    if running >= job.max_concurrency:
                        next_fire_at = now + BLOCKED_RECHECK_SECONDS  # the slot waits
                        break
                    if fired_here >= MAX_FIRES_PER_JOB:
                        break
                    index = state.last_index + 1
                    ready = prepared.pop(job.id, None)
                    try:
                        template = self._template(job)
                        if ready is None or (ready.now, ready.slot, ready.index) != (now, slot, index):
                            ready = self._build(job, template, slot, index, now)
                    except _Broken as exc:
                        log.error("job %s cannot fire: %s (retrying in %d s)", job.id, exc, BROKEN_RETRY_SECONDS)
                        next_fire_at = now + BROKEN_RETRY_SECONDS
                        break
                    fires.append(ready.fire)
                    runs.append(ready.run)
                    manifests.append(ready.manifest)
                    result.fired.append(ready.fired)
                    state = Progress(slot, index)
                    running += 1
                    fired_here += 1
                    slot = next_slot(trigger, state, now, cron_parser=self._cron_parser)
                    next_fire_at = slot
                if next_fire_at is not None and next_fire_at <= now:
                    result.still_due = True
                progress.append(dict(job_id=job.id, last_scheduled_at=state.last_scheduled_at,
                                     last_index=state.last_index, next_fire_at=next_fire_at,
                                     status=_status(job, state, running)))
            rows.record_runs(runs, manifests)
            rows.save_progress(progress)
            if runs:
                self._stage_seconds.append(time.monotonic() - staged)
            if hold is not None and not hold(now * 1000):
                raise _Abandoned()
            # The fire time is taken last, just before the guard rows and the commit: the recorded lag
            # covers building and writing the runs.
            fired_at_ms = self._clock_ms()
            for fire in fires:
                fire["fired_at_ms"] = fired_at_ms
            result.fired = [dataclasses.replace(f, fired_at_ms=fired_at_ms) for f in result.fired]
            rows.record_fires(fires)
        return result

    def prepare(self, at: int) -> int:
        """Build ahead the runs of the jobs whose next slot falls due at second `at` (still to come),
        so that firing them then only writes rows. Nothing is locked or written: when `at` comes, a
        prepared fire is used only if the job's progress, slot and `now` are what it was built for
        (otherwise it is built again). Returns how many fires were prepared."""
        with self._state.transaction(write=False) as rows:
            jobs = rows.due_jobs(at, limit=max(self.batch_size, 100_000), lock=False)
            self._load_templates(rows, jobs)
        prepared: dict[str, _Ready] = {}
        for job in jobs:
            template = self._templates.get(job.id)
            if template is None:
                continue
            try:
                slot = next_slot(Trigger.of_job(job), Progress(job.last_scheduled_at, job.last_index), at,
                                 cron_parser=self._cron_parser)
            except Exception:
                continue
            if slot is not None and slot <= at:
                try:
                    prepared[job.id] = self._build(job, template, slot, job.last_index + 1, at)
                except _Broken:
                    continue  # logged when it falls due
        self._prepared = prepared
        return len(prepared)

    def _build(self, job: Job, template: _Template, slot: int, index: int, now: int) -> _Ready:
        run_id = str(uuid.uuid4())
        name = fired_run_name(template.swf, index)
        run, manifest = self._run_rows(job, template, run_id, name, slot, index, now)
        return _Ready(
            now=now, slot=slot, index=index,
            fire=dict(job_id=job.id, scheduled_at=slot, run_id=run_id, run_index=index),
            run=run, manifest=manifest, fired=FiredRun(job.id, run_id, name, slot, index, 0, job.name),
        )

    def _skip_fired_slot(self, job_id: str, now_ms: int) -> None:
        """Another scheduler fired this job's due slot: take its fire as this job's progress."""
        now = now_ms // 1000
        with self._state.transaction() as rows:
            jobs = rows.due_jobs(now, limit=1, job_ids=[job_id])
            if not jobs:
                return
            job = jobs[0]
            slot = next_slot(Trigger.of_job(job), Progress(job.last_scheduled_at, job.last_index), now,
                             cron_parser=self._cron_parser)
            fire = rows.get_fire(job_id, slot) if slot is not None else None
            if fire is None:
                return
            log.warning("job %s slot %d was fired by another scheduler (run %s); moving on", job_id, slot, fire.run_id)
            state = Progress(slot, max(job.last_index, fire.run_index))
            rows.save_progress([dict(job_id=job_id, last_scheduled_at=state.last_scheduled_at,
                                     last_index=state.last_index, next_fire_at=0, status=_status(job, state, 1))])

    def _load_templates(self, rows: ScheduleTransaction, jobs: Sequence[Job]) -> None:
        missing = [job for job in jobs if job.id not in self._templates]
        if not missing:
            return
        if len(self._templates) > 20000:
            self._templates.clear()
        manifests = rows.job_manifests([job.id for job in missing])
        experiments = rows.experiment_names([job.experiment_id for job in missing])
        for job in missing:
            try:
                self._templates[job.id] = self._build_template(
                    job, manifests.get(job.id, ""), experiments.get(job.experiment_id, "")
                )
            except _Broken as exc:
                self._broken[job.id] = exc

    def _template(self, job: Job) -> _Template:
        template = self._templates.get(job.id)
        if template is None:
            raise self._broken.pop(job.id, None) or _Broken("its manifest is missing")
        return template

    def _build_template(self, job: Job, spec_manifest: str, experiment_name: str) -> _Template:
        if is_ir_template(spec_manifest):
            return self._ir_template(job, spec_manifest, experiment_name)
        try:
            document = parse_workflow(spec_manifest).document
        except WorkflowError as exc:
            raise _Broken(f"invalid workflow manifest: {exc}") from None
        try:
            given = [(str(p["name"]), str(p.get("value", ""))) for p in json.loads(job.parameters or "[]")]
        except (ValueError, TypeError, KeyError) as exc:
            raise _Broken(f"invalid job parameters: {exc}") from None
        token = self._token
        try:
            workflow = runtime_workflow(
                document,
                run_id=f"{token}ID@@",
                run_name=f"{token}NAME@@",
                parameters=[{"name": name, "value": f"{token}P{i}@@"} for i, (name, _) in enumerate(given)],
                now=0,
                service_account=job.service_account,
                default_service_account=self._settings.default_service_account,
                format_value=lambda value: value,
            )
        except ApiError as exc:
            raise _Broken(str(exc)) from None
        swf = swf_name(job.name, job.id)
        metadata = workflow["metadata"]
        metadata.pop("generateName", None)
        metadata["name"] = f"{token}NAME@@"
        labels = metadata["labels"]
        labels[LABEL_SWF_NAME] = swf
        labels[LABEL_EPOCH] = f"{token}EPOCH@@"
        labels[LABEL_INDEX] = f"{token}INDEX@@"
        labels[LABEL_OWNED] = "true"
        return _Template(
            text=json.dumps(workflow, separators=(",", ":"), ensure_ascii=False),
            spec_manifest=spec_manifest,
            service_account=workflow["spec"].get("serviceAccountName", ""),
            parameters=tuple(given),
            swf=swf,
            references=_fired_references(job, experiment_name),
        )

    def _ir_template(self, job: Job, spec_manifest: str, experiment_name: str) -> _Template:
        """What the runs of an IR job share. Its spec and parameters are tried once here (placeholder run id
        and name), so that a job the IR run creation refuses is broken before any fire."""
        if self._ir_run_document is None:
            raise _Broken("KFP v2 pipeline specs (IR) are not fired by this scheduler yet")
        try:
            typed = parameter_values(json.loads(job.parameters or "[]"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise _Broken(f"invalid job parameters: {exc}") from None
        template = _Template(
            text="",
            spec_manifest=spec_manifest,
            service_account=job.service_account or self._settings.default_service_account,
            parameters=(),
            swf=swf_name(job.name, job.id),
            references=_fired_references(job, experiment_name),
            typed=tuple(typed.items()),
            pipeline_root=job.pipeline_root or "",
        )
        run_id = str(uuid.uuid4())
        first = _job_run_values(typed, run_id=run_id, now=0, slot=0, index=1)
        self._ir_document(template, run_id=run_id, name="check", now=0, values=first)
        return template

    def _ir_document(
        self, template: _Template, *, run_id: str, name: str, now: int, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        assert self._ir_run_document is not None
        try:
            return self._ir_run_document(
                template.spec_manifest, run_id=run_id, run_name=name, now=now, parameter_values=values,
                pipeline_root=template.pipeline_root,
            )
        except ApiError as exc:
            raise _Broken(str(exc)) from None

    def _run_rows(
        self, job: Job, template: _Template, run_id: str, name: str, slot: int, index: int, now: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if template.typed is not None:
            return self._ir_run_rows(job, template, run_id, name, slot, index, now)
        values = [
            substitute_macros(value, run_id=run_id, now=now, scheduled_at=slot, index=index)
            for _, value in template.parameters
        ]
        fills = {"ID": run_id, "NAME": name, "EPOCH": str(slot), "INDEX": str(index)}
        for i, value in enumerate(values):
            fills[f"P{i}"] = json.dumps(value, ensure_ascii=False)[1:-1]
        workflow = self._placeholder.sub(lambda m: fills.get(m.group(1), m.group(0)), template.text)
        parameters = [{"name": n, "value": v} for (n, _), v in zip(template.parameters, values, strict=True)]
        run = new_run_row(
            run_id=run_id, name=name, description="", namespace=job.namespace, experiment_id=job.experiment_id,
            job_id=job.id, pipeline_id=job.pipeline_id, pipeline_name=job.pipeline_name,
            pipeline_version_id=job.pipeline_version_id, service_account=template.service_account,
            parameters=parameters, resource_references=template.references, created_at=now, scheduled_at=slot,
        )
        return run, new_manifest_row(run_id=run_id, spec_manifest=template.spec_manifest, workflow=workflow)

    def _ir_run_rows(
        self, job: Job, template: _Template, run_id: str, name: str, slot: int, index: int, now: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """An IR job's fire: the macros of its text values substituted, the document made by run creation's
        IR function, labelled as a fired run."""
        assert template.typed is not None
        values = _job_run_values(dict(template.typed), run_id=run_id, now=now, slot=slot, index=index)
        document = self._ir_document(template, run_id=run_id, name=name, now=now, values=values)
        metadata = document.get("metadata")
        if isinstance(metadata, dict):
            labels = metadata.setdefault("labels", {})
            labels.update({LABEL_SWF_NAME: template.swf, LABEL_EPOCH: str(slot), LABEL_INDEX: str(index),
                           LABEL_OWNED: "true"})
        run = new_run_row(
            run_id=run_id, name=name, description="", namespace=job.namespace, experiment_id=job.experiment_id,
            job_id=job.id, pipeline_id=job.pipeline_id, pipeline_name=job.pipeline_name,
            pipeline_version_id=job.pipeline_version_id, service_account=template.service_account,
            parameters=stored_parameters(values), resource_references=template.references, created_at=now,
            scheduled_at=slot,
        )
        workflow = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        return run, new_manifest_row(run_id=run_id, spec_manifest=template.spec_manifest, workflow=workflow)

    def _notify(self, fired: Sequence[FiredRun]) -> None:
        """Say what was fired (committed by now) in the log, and tell the executor."""
        for run in fired:
            observe_lag(SCHEDULER_FIRE_LAG, run.fired_at_ms / 1000 - run.scheduled_at)
            log.info("job %s (%s) fired for %s: run %s (%s) created", run.job_id, run.job_name,
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.scheduled_at)), run.run_id, run.run_name)
        execution = self._execution() if self._execution is not None else None
        if execution is None:
            return
        for run in fired:
            try:
                execution.run_created(run.run_id)
            except Exception:  # committed: the executor finds the run in the rows anyway
                log.exception("run_created hook failed for run %s", run.run_id)


def _job_run_values(
    values: Mapping[str, Any], *, run_id: str, now: int, slot: int, index: int
) -> dict[str, Any]:
    """Typed parameter values with the job-run macros of their text values substituted (`[[Index]]` may stand
    for an integer: it is typed afterwards)."""
    return {
        key: substitute_macros(value, run_id=run_id, now=now, scheduled_at=slot, index=index)
        if isinstance(value, str) else value
        for key, value in values.items()
    }


def _fired_references(job: Job, experiment_name: str) -> str:
    """A fired run's references: the job's experiment (owner) and the job (creator)."""
    return encode_references([
        ResourceReference(ResourceKey(ResourceType.EXPERIMENT, job.experiment_id), Relationship.OWNER,
                          experiment_name),
        ResourceReference(ResourceKey(ResourceType.JOB, job.id), Relationship.CREATOR, job.name),
    ])
