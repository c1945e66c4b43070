"""Facts about experiments that their runs hold: v2beta1's `last_run_created_at`, computed from the runs
table for a whole page of experiments at once (no column to keep up to date, no query per experiment)."""

from __future__ import annotations

from collections.abc import Sequence

from kfp_backend.store import experiment_activity_repo as repo
from kfp_backend.store.db import Database
from kfp_backend.store.models import Experiment


class ExperimentActivity:
    def __init__(self, db: Database) -> None:
        self._db = db

    def last_run_created_at(self, experiments: Sequence[Experiment]) -> dict[str, int]:
        """experiment id -> when its newest run was created (Unix seconds); absent for an experiment without
        runs. For experiments the caller has read through ExperimentService, which authorized the read."""
        with self._db.transaction(write=False) as session:
            return repo.last_run_created_at(session, [experiment.id for experiment in experiments])
