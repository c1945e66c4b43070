"""The v2beta1 Experiment on the wire (protojson with proto names, unpopulated fields left out).

A request body may use snake_case or lowerCamelCase keys; an unknown key is a 400, as upstream's gateway
refuses it. The output-only fields (`experiment_id`, `created_at`, `storage_state`, `last_run_created_at`)
are read, checked and ignored on create, as upstream ignores them.
"""

from __future__ import annotations

import enum
from typing import Any

from marshmallow import RAISE, fields

from kfp_backend.api.schemas import Enum, ProtoSchema, Timestamp
from kfp_backend.api.v2.listing import FieldNames
from kfp_backend.services.experiments import Experiment
from kfp_backend.store.states import STORAGE_ARCHIVED, STORAGE_AVAILABLE


class StorageState(enum.IntEnum):
    STORAGE_STATE_UNSPECIFIED = 0
    AVAILABLE = 1
    ARCHIVED = 2


# Stored storage state (the v1 vocabulary) <-> v2 enum name.
_STORED_TO_V2 = {STORAGE_AVAILABLE: StorageState.AVAILABLE.name, STORAGE_ARCHIVED: StorageState.ARCHIVED.name}

# v2 list fields -> the fields ExperimentService lists by.
EXPERIMENT_FIELDS = FieldNames(
    {"experiment_id": "id", "display_name": "name"},
    {"storage_state": {v2: stored for stored, v2 in _STORED_TO_V2.items()}},
)


class ExperimentSchema(ProtoSchema):
    class Meta:
        unknown = RAISE

    experiment_id = fields.String(load_default="")
    display_name = fields.String(load_default="")
    description = fields.String(load_default="")
    created_at = Timestamp(load_default=0)
    namespace = fields.String(load_default="")
    storage_state = Enum(StorageState, load_default=StorageState.STORAGE_STATE_UNSPECIFIED)
    last_run_created_at = Timestamp(load_default=0)


_schema = ExperimentSchema()


def dump_experiment(experiment: Experiment, last_run_created_at: int) -> dict[str, Any]:
    """The wire form; both times are always written (the epoch when there is no run yet), as upstream's."""
    return _schema.dump({
        "experiment_id": experiment.id,
        "display_name": experiment.name,
        "description": experiment.description,
        "created_at": experiment.created_at,
        "namespace": experiment.namespace,
        "storage_state": _STORED_TO_V2.get(experiment.storage_state),
        "last_run_created_at": last_run_created_at,
    })


def experiment_schema() -> ExperimentSchema:
    return _schema
