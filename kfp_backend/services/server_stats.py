"""Figures about the whole server, for its operators' metrics: counts only, nothing of any one run or
tenant (see kfp_backend/observability.py)."""

from __future__ import annotations

from kfp_backend.store import runs_repo
from kfp_backend.store.db import Database
from kfp_backend.store.states import ERROR, FAILED, NOT_STARTED, PENDING, RUNNING, SKIPPED, SUCCEEDED, TERMINATING

# The run states a count is reported under; a run not yet started counts as Pending, and any other stored
# status (none is expected) as "Other", so a label value is never free text.
RUN_STATES = (PENDING, RUNNING, TERMINATING, SUCCEEDED, FAILED, ERROR, SKIPPED)
OTHER_STATE = "Other"


def runs_by_state(db: Database) -> dict[str, int]:
    """Every run state of RUN_STATES (and Other) -> how many runs are in it, zeros included."""
    with db.transaction(write=False) as session:
        stored = runs_repo.count_by_status(session)
    counts = dict.fromkeys((*RUN_STATES, OTHER_STATE), 0)
    for status, count in stored.items():
        state = PENDING if status == NOT_STARTED else status if status in RUN_STATES else OTHER_STATE
        counts[state] += count
    return counts
