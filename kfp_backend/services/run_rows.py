"""The rows of a new run, whoever creates it: RunService for CreateRun, the scheduler for a job's fire."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kfp_backend.store.models import description_key
from kfp_backend.store.states import NOT_STARTED, PENDING, STORAGE_AVAILABLE


def new_run_row(
    *,
    run_id: str,
    name: str,
    description: str,
    namespace: str,
    experiment_id: str,
    job_id: str | None,
    pipeline_id: str,
    pipeline_name: str,
    pipeline_version_id: str | None,
    service_account: str,
    parameters: Sequence[Mapping[str, Any]],
    resource_references: str,
    created_at: int,
    scheduled_at: int,
    held: bool = False,
) -> dict[str, Any]:
    """The columns of a run as created: not started (Pending and held when `held`: see RunService.start),
    available, no driver yet. `parameters` are the
    run's [{"name", "value"}], stored as compact JSON; `resource_references` are encoded already."""
    return dict(
        id=run_id,
        name=name,
        description=description,
        description_key=description_key(description),
        namespace=namespace,
        experiment_id=experiment_id,
        job_id=job_id,
        pipeline_id=pipeline_id,
        pipeline_name=pipeline_name,
        pipeline_version_id=pipeline_version_id,
        service_account=service_account,
        parameters=json.dumps(parameters, separators=(",", ":"), ensure_ascii=False),
        resource_references=resource_references,
        created_at=created_at,
        scheduled_at=scheduled_at,
        finished_at=0,
        status=PENDING if held else NOT_STARTED,
        held=held,
        storage_state=STORAGE_AVAILABLE,
        terminate_requested=False,
        driver_id=None,
        driver_heartbeat=0,
    )


def new_manifest_row(*, run_id: str, spec_manifest: str, workflow: str) -> dict[str, Any]:
    """The columns of a new run's manifest: its pipeline spec and runtime workflow (JSON), no status yet."""
    return dict(run_id=run_id, pipeline_spec_manifest=spec_manifest, workflow=workflow, workflow_status="{}")
