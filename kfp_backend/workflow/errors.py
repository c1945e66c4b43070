"""The one error the workflow package raises: parsing (manifest) and compiling (compile) both use it."""

from __future__ import annotations


class WorkflowError(ValueError):
    """The manifest is not a usable Argo Workflow; the message says why."""
