"""Experiment rows."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kfp_backend.store.common import insert
from kfp_backend.store.listing import Listable, ListField, ListQuery, Page, list_page
from kfp_backend.store.models import Experiment, Run

# v2beta1's last_run_created_at, as a list field: the newest run's creation time (0 without runs), computed
# per experiment by one seek on ix_runs_experiment_created_at (the value shown is computed alike:
# experiment_activity_repo). A COUNT that filters on it reads runs, so it is never taken from the count cache.
LAST_RUN_CREATED_AT = func.coalesce(
    select(func.max(Run.created_at)).where(Run.experiment_id == Experiment.id).correlate(Experiment)
    .scalar_subquery(),
    0,
)

EXPERIMENT_LISTABLE = Listable(
    type_name="Experiment",
    model=Experiment,
    id_column=Experiment.id,
    fields={
        "id": ListField(Experiment.id, str),
        "name": ListField(Experiment.name, str),
        "created_at": ListField(Experiment.created_at, int),
        "description": ListField(Experiment.description, str, sort_column=Experiment.description_key),
        "namespace": ListField(Experiment.namespace, str),
        "storage_state": ListField(Experiment.storage_state, str),
        "last_run_created_at": ListField(LAST_RUN_CREATED_AT, int),
    },
)


def add_experiment(session: Session, experiment: Experiment) -> None:
    insert(session, experiment)


def get_experiment(session: Session, experiment_id: str) -> Experiment | None:
    return session.get(Experiment, experiment_id)


def find_experiment_by_name(session: Session, namespace: str, name: str) -> Experiment | None:
    return session.scalar(select(Experiment).where(Experiment.namespace == namespace, Experiment.name == name))


def list_experiments(session: Session, query: ListQuery, namespace: str | None = None) -> Page[Experiment]:
    scope = [Experiment.namespace == namespace] if namespace is not None else []
    return list_page(session, EXPERIMENT_LISTABLE, query, scope)


def delete_experiment(session: Session, experiment_id: str) -> bool:
    return session.execute(delete(Experiment).where(Experiment.id == experiment_id)).rowcount > 0


def set_experiment_storage_state(session: Session, experiment_id: str, state: str) -> bool:
    result = session.execute(
        update(Experiment).where(Experiment.id == experiment_id).values(storage_state=state)
    )
    return result.rowcount > 0
