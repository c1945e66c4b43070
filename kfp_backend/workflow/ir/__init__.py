"""KFP v2 pipeline specs (the kfp 2.x SDK's IR): a typed, validated model, pure (no I/O, no database).

- `document`: tell an IR document from an Argo Workflow; split a pipeline spec from its platform spec.
- `model`: the frozen dataclasses (`PipelineSpec`, components, DAGs, tasks, executors).
- `parse`: document -> `PipelineSpec`, each field checked; `checks`: every reference resolves.
- `conditions`: the CEL of task conditions and parameter selectors.
"""

from kfp_backend.workflow.ir.document import is_pipeline_spec
from kfp_backend.workflow.ir.model import PipelineSpec
from kfp_backend.workflow.ir.parse import parse_pipeline_spec

__all__ = ["PipelineSpec", "is_pipeline_spec", "parse_pipeline_spec"]
