"""What the API shows alike of a run and a job: the row each was created as (name, description, pipeline
spec, resource references, service account) and, on get/create, the pipeline spec manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from kfp_backend.services.references import ResourceReference, decode_references


class SpecRow(Protocol):
    """The columns a run row and a job row share."""

    id: str
    name: str
    description: str
    pipeline_id: str
    pipeline_name: str
    service_account: str
    parameters: str  # [{"name", "value"}] as JSON
    resource_references: str  # as services.references.encode_references writes them


RowT = TypeVar("RowT", bound=SpecRow)


@dataclass
class SpecView(Generic[RowT]):
    """A row with its stored references and parameters decoded; `pipeline_spec_manifest` is the manifest it
    was created from on get/create, None in lists (which never read manifests)."""

    row: RowT
    pipeline_spec_manifest: str | None = None

    @property
    def references(self) -> list[ResourceReference]:
        return decode_references(self.row.resource_references)

    @property
    def parameters(self) -> list[dict[str, str]]:
        return json.loads(self.row.parameters) if self.row.parameters else []
