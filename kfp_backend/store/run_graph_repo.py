"""What the run graph reads: a run's status with its manifest in one query, its node data in another."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kfp_backend.store.models import Run, RunManifest, RunNode


@dataclass(frozen=True)
class RunGraphRow:
    namespace: str
    status: str
    workflow: str  # the runtime workflow (Argo) or runtime document (IR), JSON; "" without a manifest
    workflow_status: str  # JSON


def run_graph_row(session: Session, run_id: str) -> RunGraphRow | None:
    row = session.execute(
        select(Run.namespace, Run.status, RunManifest.workflow, RunManifest.workflow_status)
        .outerjoin(RunManifest, RunManifest.run_id == Run.id)
        .where(Run.id == run_id)
    ).first()
    if row is None:
        return None
    return RunGraphRow(row[0], row[1] or "", row[2] or "", row[3] or "{}")


def node_data(session: Session, run_id: str) -> list[str]:
    """The data (JSON) of every node row of the run: only that column, as the graph needs nothing else."""
    return list(session.scalars(select(RunNode.data).where(RunNode.run_id == run_id)))
