"""Run rows, their manifests, nodes and metrics.

Listing reads the `runs` table only (plus one query for the page's metrics); manifests and node rows are
read by get, retry and the artifact/log lookups. State changes that race with the executor (terminate,
retry) are single conditional UPDATEs or happen under a row lock.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Row, and_, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.errors import DuplicateKeyError
from kfp_backend.store.listing import Listable, ListField, ListQuery, Page, list_page
from kfp_backend.store.models import Run, RunManifest, RunMetric, RunNode
from kfp_backend.store.states import NOT_STARTED, RUNNING, TERMINATING

METRIC_SORT_PREFIX = "metric:"
# Where a run lacks the sorted metric: the lowest double, so such runs come first in ascending order
# (as upstream on MySQL, where NULL sorts first) and pages can seek on a value that is never NULL.
NO_METRIC_VALUE = -sys.float_info.max
_METRIC_NAME = re.compile(r"[a-z]([-_a-z0-9]{0,62}[a-z0-9])?")


def metric_sort_field(name: str) -> ListField | None:
    """`metric:<name>` sorts runs by that metric's value (sort only, as upstream). Names match ignoring
    case: sort_by arrives lower-cased (as upstream lower-cases it) while reported names may have capitals.
    A run whose steps reported the metric more than once sorts by the largest value."""
    if not name.startswith(METRIC_SORT_PREFIX):
        return None
    metric = name[len(METRIC_SORT_PREFIX):]
    if not _METRIC_NAME.fullmatch(metric):
        return None
    # One aggregate over the metric's rows, joined to the page query: a lookup per run (a correlated
    # subquery) costs 2-3x more at 100k runs.
    values = (
        select(RunMetric.run_id, func.max(RunMetric.number_value).label("value"))
        .where(func.lower(RunMetric.name) == metric)
        .group_by(RunMetric.run_id)
        .subquery("sorted_metric")
    )
    return ListField(
        func.coalesce(values.c.value, NO_METRIC_VALUE), float, filterable=False,
        join=lambda statement: statement.outerjoin(values, values.c.run_id == Run.id),
    )


RUN_LISTABLE = Listable(
    type_name="Run",
    model=Run,
    id_column=Run.id,
    fields={
        "id": ListField(Run.id, str),
        "name": ListField(Run.name, str),
        "created_at": ListField(Run.created_at, int),
        "description": ListField(Run.description, str, sort_column=Run.description_key),
        "scheduled_at": ListField(Run.scheduled_at, int),
        "storage_state": ListField(Run.storage_state, str),
        "status": ListField(Run.status, str),
    },
    sort_field_for=metric_sort_field,
)

# The web UI's runs list sorts by two more columns, as it shows them (sort only; ListRuns itself keeps
# upstream's fields): Duration (see Run.duration_key: active runs above every finished one) and Pipeline. Each
# has an index on (column, id), and one within an experiment (migration 0012), so their pages seek as the
# others' do.
UI_RUN_LISTABLE = dataclasses.replace(RUN_LISTABLE, fields={
    **RUN_LISTABLE.fields,
    "duration": ListField(Run.duration_key, int, filterable=False),
    "pipeline_name": ListField(Run.pipeline_name, str, filterable=False),
})


def add_run(session: Session, run: Run, manifest: RunManifest) -> None:
    insert(session, run)
    insert(session, manifest)


def get_run(session: Session, run_id: str, *, lock: bool = False) -> Run | None:
    statement = select(Run).where(Run.id == run_id)
    if lock:
        statement = statement.with_for_update()
    return session.scalar(statement)


def run_exists(session: Session, run_id: str) -> bool:
    return session.scalar(select(Run.id).where(Run.id == run_id)) is not None


def get_manifest(session: Session, run_id: str) -> RunManifest | None:
    return session.get(RunManifest, run_id)


def list_nodes(session: Session, run_id: str) -> list[RunNode]:
    return list(session.scalars(select(RunNode).where(RunNode.run_id == run_id).order_by(RunNode.node_id)))


def get_node(session: Session, run_id: str, node_id: str) -> RunNode | None:
    return session.get(RunNode, (run_id, node_id))


def workflow_statuses(session: Session, run_ids: Iterable[str]) -> dict[str, str]:
    """The stored workflow status (JSON text) of several runs, in one query."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(RunManifest.run_id, RunManifest.workflow_status).where(RunManifest.run_id.in_(wanted))
    )
    return {run_id: status for run_id, status in rows}


def list_runs(session: Session, query: ListQuery, scope: Sequence[ColumnElement[bool]] = (),
              listable: Listable = RUN_LISTABLE) -> Page[Run]:
    return list_page(session, listable, query, scope)


def scope_experiment(experiment_id: str) -> ColumnElement[bool]:
    return Run.experiment_id == experiment_id


def scope_job(job_id: str) -> ColumnElement[bool]:
    return Run.job_id == job_id


def scope_pipeline_version(version_id: str) -> ColumnElement[bool]:
    return Run.pipeline_version_id == version_id


def scope_namespace(namespace: str) -> ColumnElement[bool]:
    return Run.namespace == namespace


def delete_run(session: Session, run_id: str) -> bool:
    """Delete a run; its manifest, nodes and metrics go with it (ON DELETE CASCADE)."""
    # SQLite enforces the cascade only with foreign keys on (db.py turns them on); be explicit anyway.
    for model in (RunMetric, RunNode, RunManifest):
        session.execute(delete(model).where(model.run_id == run_id))
    return session.execute(delete(Run).where(Run.id == run_id)).rowcount > 0


def set_storage_state(session: Session, run_id: str, state: str) -> bool:
    return session.execute(update(Run).where(Run.id == run_id).values(storage_state=state)).rowcount > 0


def set_experiment_runs_storage_state(session: Session, experiment_id: str, state: str) -> int:
    result = session.execute(update(Run).where(Run.experiment_id == experiment_id).values(storage_state=state))
    return result.rowcount


def mark_terminating(session: Session, run_id: str, from_statuses: Iterable[str], *, release: bool = False) -> bool:
    """Status -> Terminating (and the request flag) only if the run is still in one of `from_statuses`.
    `release`: a held run is let go too, so that an executor claims it and ends it as it ends any run
    terminated before its first step."""
    values: dict[str, object] = {"status": TERMINATING, "terminate_requested": True}
    if release:
        values["held"] = False
    result = session.execute(update(Run).where(Run.id == run_id, Run.status.in_(list(from_statuses))).values(values))
    return result.rowcount > 0


def start_held(session: Session, run_id: str, now: int) -> bool:
    """A held run becomes an ordinary new run (not started, claimable), scheduled now; False when the run is
    not held (started before, terminated, or created started). One conditional UPDATE: two starts racing
    start it once."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.held.is_(True))
        .values(held=False, status=NOT_STARTED, scheduled_at=now)
    )
    return result.rowcount > 0


# -- batch status: a constant number of statements whatever the number of ids --------------------------------

# The run columns a batch status entry shows (and authorizes on): never the manifests.
_STATUS_COLUMNS = (
    Run.id, Run.name, Run.namespace, Run.status, Run.created_at, Run.finished_at, Run.storage_state,
    Run.terminate_requested, Run.held,
)


def run_status_rows(session: Session, run_ids: Iterable[str]) -> dict[str, Row]:
    """The status columns of the runs of `run_ids` that exist, by id: one SELECT ... WHERE id IN (...)."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    # Core on the session's connection: the ORM's result machinery costs more than the query here.
    rows = session.connection().execute(select(*_STATUS_COLUMNS).where(Run.id.in_(wanted))).all()
    return {row.id: row for row in rows}


def node_status_rows(
    session: Session, pairs: Iterable[tuple[str, str]]
) -> tuple[dict[str, Row], dict[tuple[str, str], tuple[str, str]]]:
    """For (run id, node id) pairs: the status columns of the runs that exist, and (phase, data JSON) of the
    nodes that exist, in one SELECT (the runs LEFT JOIN the asked nodes; a run with none of them still
    comes, with NULL node columns)."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}, {}
    asked = tuple_(RunNode.run_id, RunNode.node_id).in_(wanted)
    rows = session.connection().execute(
        select(*_STATUS_COLUMNS, RunNode.node_id, RunNode.phase, RunNode.data)
        .outerjoin(RunNode, and_(RunNode.run_id == Run.id, asked))
        .where(Run.id.in_(sorted({run_id for run_id, _ in wanted})))
    ).all()
    runs: dict[str, Row] = {}
    nodes: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        runs.setdefault(row.id, row)
        if row.node_id is not None:
            nodes[(row.id, row.node_id)] = (row.phase, row.data)
    return runs, nodes


def reset_for_retry(session: Session, run_id: str, workflow_status: str) -> None:
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(status=RUNNING, finished_at=0, terminate_requested=False, driver_id=None, driver_heartbeat=0)
    )
    session.execute(update(RunManifest).where(RunManifest.run_id == run_id).values(workflow_status=workflow_status))


def update_node(session: Session, run_id: str, node_id: str, phase: str, data: str) -> None:
    session.execute(
        update(RunNode).where(RunNode.run_id == run_id, RunNode.node_id == node_id).values(phase=phase, data=data)
    )


def delete_nodes(session: Session, run_id: str, node_ids: Iterable[str]) -> None:
    wanted = sorted(set(node_ids))
    if wanted:
        session.execute(delete(RunNode).where(RunNode.run_id == run_id, RunNode.node_id.in_(wanted)))


# -- metrics -----------------------------------------------------------------------------------------------


def add_metric(session: Session, metric: RunMetric) -> bool:
    """Insert a metric; False when (run, node, name) was reported before (the primary key refuses it)."""
    try:
        insert(session, metric)
    except DuplicateKeyError:
        return False
    return True


def count_metrics(session: Session, run_id: str) -> int:
    return session.scalar(select(func.count()).select_from(RunMetric).where(RunMetric.run_id == run_id)) or 0


def metrics_of_runs(session: Session, run_ids: Iterable[str]) -> dict[str, list[RunMetric]]:
    """The metrics of several runs in one query, each run's in report order."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    rows = session.scalars(
        select(RunMetric)
        .where(RunMetric.run_id.in_(wanted))
        .order_by(RunMetric.run_id, RunMetric.reported_at_ns, RunMetric.node_id, RunMetric.name)
    )
    found: dict[str, list[RunMetric]] = {}
    for row in rows:
        found.setdefault(row.run_id, []).append(row)
    return found


def count_by_status(session: Session) -> dict[str, int]:
    """How many runs have each status (one GROUP BY; the metrics scrape's only query)."""
    rows = session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    return {row[0] or "": int(row[1]) for row in rows}
