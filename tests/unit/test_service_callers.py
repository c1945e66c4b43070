"""Default-deny in services: every public method of a service that acts for someone takes `caller` as a
required keyword argument. A forgotten caller is a TypeError, never the full rights of SYSTEM."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import kfp_backend.services
from kfp_backend.services.experiments import ExperimentService
from kfp_backend.services.jobs import JobService
from kfp_backend.services.metrics import MetricsService
from kfp_backend.services.pipelines import PipelineService
from kfp_backend.services.runs import RunService

# The services the API calls for a caller, and their public methods that act for nobody: wiring, and what
# the services do for themselves.
ACTING_SERVICES = (ExperimentService, PipelineService, RunService, JobService, MetricsService)
NOT_ACTING_FOR_A_CALLER = {
    (ExperimentService, "ensure_default"),  # the Default experiment, created on first need
    (RunService, "attach_execution"),
    (JobService, "attach_scheduling"),
}


def _public_methods(cls: type) -> list[tuple[str, inspect.Signature]]:
    return [
        (name, inspect.signature(function))
        for name, function in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    ]


def _service_classes() -> list[type]:
    """Every class defined in a module of kfp_backend.services."""
    classes = []
    for module_info in pkgutil.iter_modules(kfp_backend.services.__path__):
        module = importlib.import_module(f"kfp_backend.services.{module_info.name}")
        classes += [cls for _, cls in inspect.getmembers(module, inspect.isclass) if cls.__module__ == module.__name__]
    return classes


@pytest.mark.parametrize("cls", _service_classes(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_no_method_has_a_default_caller(cls: type) -> None:
    for name, signature in _public_methods(cls):
        caller = signature.parameters.get("caller")
        if caller is None:
            continue
        assert caller.default is inspect.Parameter.empty, f"{cls.__name__}.{name}: a default caller"


@pytest.mark.parametrize("cls", ACTING_SERVICES, ids=lambda cls: cls.__name__)
def test_every_public_method_takes_a_caller(cls: type) -> None:
    for name, signature in _public_methods(cls):
        if (cls, name) in NOT_ACTING_FOR_A_CALLER:
            continue
        caller = signature.parameters.get("caller")
        assert caller is not None, f"{cls.__name__}.{name} takes no caller"
        assert caller.kind is inspect.Parameter.KEYWORD_ONLY, f"{cls.__name__}.{name}: caller is not keyword-only"


def test_a_forgotten_caller_is_a_type_error() -> None:
    """Refused by the call itself, before the method reads anything."""
    with pytest.raises(TypeError, match="caller"):
        RunService.retry(None, "any-run")  # type: ignore[arg-type, call-arg]
    with pytest.raises(TypeError, match="caller"):
        JobService.list(None, None)  # type: ignore[arg-type, call-arg]
