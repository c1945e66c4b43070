"""KFP v2 metrics artifacts as v1 run metrics: names made to fit v1's rules, numbers only, first name wins."""

from __future__ import annotations

import json

import pytest

from kfp_backend.executor.v2_metrics import metrics_document, v1_metric_name
from kfp_backend.services.metrics import ReportedMetric, validate_metric


@pytest.mark.parametrize(("name", "v1"), [
    ("accuracy", "accuracy"), ("val accuracy", "val_accuracy"), ("acc@5", "acc_5"), ("1st", "m_1st"),
    ("_x", "m__x"), ("x-", "x"), ("a" * 70, "a" * 64), ("é", None), ("__", None), ("", None),
])
def test_names_are_made_v1_metric_names(name: str, v1: str | None) -> None:
    assert v1_metric_name(name) == v1
    if v1 is not None:
        assert validate_metric(ReportedMetric(v1, "node")) is None


def _metrics(metadata: dict, title: str = "system.Metrics") -> dict:
    return {"name": "m", "uri": "minio://b/k", "type": {"schemaTitle": title}, "metadata": metadata}


def test_the_numbers_of_metrics_artifacts_become_one_document() -> None:
    outputs = {"parameters": {"x": 1}, "artifacts": {
        "b": [_metrics({"val acc": 0.5, "note": "text", "flag": True, "n": 3})],
        "a": [_metrics({"val_acc": 0.25})],
        "data": [_metrics({"rows": 10}, title="system.Dataset")],
    }}
    document = metrics_document(outputs)
    assert document is not None
    assert json.loads(document) == {"metrics": [
        {"name": "val_acc", "numberValue": 0.25, "format": "RAW"},  # artifact "a" first: it wins over "val acc"
        {"name": "n", "numberValue": 3.0, "format": "RAW"},
    ]}
    assert metrics_document({"artifacts": {"data": [_metrics({"rows": 1}, title="system.Dataset")]}}) is None
