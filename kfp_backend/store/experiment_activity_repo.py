"""What the runs of experiments tell about them, read in one query for a page of experiments."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kfp_backend.store.models import Run


def last_run_created_at(session: Session, experiment_ids: Collection[str]) -> dict[str, int]:
    """experiment id -> creation time (Unix seconds) of its newest run; experiments without runs are absent.
    One grouped seek per experiment on ix_runs_experiment_created_at."""
    if not experiment_ids:
        return {}
    rows = session.execute(
        select(Run.experiment_id, func.max(Run.created_at))
        .where(Run.experiment_id.in_(sorted(set(experiment_ids))))
        .group_by(Run.experiment_id)
    )
    return {experiment_id: created_at for experiment_id, created_at in rows if created_at is not None}
