"""The mlpipeline-metrics file format (jsonpb's reading of a ReportRunMetricsRequest) and metric validation."""

from __future__ import annotations

import pytest

from kfp_backend.services.metrics import ReportedMetric, parse_metrics_file, validate_metric


def test_valid_files() -> None:
    assert parse_metrics_file(b'{"metrics": [{"name": "accuracy-score", "numberValue": 0.91, "format": "PERCENTAGE"},'
                              b' {"name": "loss", "number_value": 1.2e-3, "format": "RAW"},'
                              b' {"name": "epochs", "numberValue": 10},'
                              b' {"name": "s", "numberValue": "0.5", "format": 1, "nodeId": "ignored"},'
                              b' {"name": "z", "format": 0, "node_id": "x"}]}') == [
        {"name": "accuracy-score", "node_id": "", "number_value": 0.91, "format": "PERCENTAGE"},
        {"name": "loss", "node_id": "", "number_value": 0.0012, "format": "RAW"},
        {"name": "epochs", "node_id": "", "number_value": 10.0, "format": "UNSPECIFIED"},
        {"name": "s", "node_id": "ignored", "number_value": 0.5, "format": "RAW"},
        {"name": "z", "node_id": "x", "number_value": 0.0, "format": "UNSPECIFIED"},
    ]
    assert parse_metrics_file(b"{}") == []
    assert parse_metrics_file(b'{"metrics": null, "run_id": "r"}') == []
    assert parse_metrics_file('\ufeff{"metrics": [{"name": "a", "numberValue": null}]}'.encode()) == [
        {"name": "a", "node_id": "", "number_value": 0.0, "format": "UNSPECIFIED"}]
    # An invalid name is the reporter's business (one metric refused), not the file's.
    assert parse_metrics_file(b'{"metrics": [{"name": "bad name"}]}') == [
        {"name": "bad name", "node_id": "", "number_value": 0.0, "format": "UNSPECIFIED"}]


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b'"metrics"', b'{"metrics": {}}', b'{"metrics": [1]}',
    b'{"metrics": [], "extra": 1}', b'{"metric": []}',
    b'{"metrics": [{"name": "a", "value": 1}]}',
    b'{"metrics": [{"name": "a", "numberValue": true}]}',
    b'{"metrics": [{"name": "a", "numberValue": "lots"}]}',
    b'{"metrics": [{"name": "a", "numberValue": NaN}]}',
    b'{"metrics": [{"name": "a", "format": "PERCENT"}]}',
    b'{"metrics": [{"name": "a", "format": 7}]}',
    b'{"metrics": [{"name": 5}]}',
    b'{"run_id": 5}',
    b"\xff\xfe",
    b"[" * 100000,
])
def test_invalid_files(data: bytes) -> None:
    assert parse_metrics_file(data) is None


def test_validate_metric() -> None:
    pattern = "^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$"
    for name in ("a", "A1", "acc-score_2", "x" * 64):
        assert validate_metric(ReportedMetric(name, "n")) is None
    for name in ("", "1a", "a-", "a_", "a b", "x" * 65, "é", "a\n"):
        assert validate_metric(ReportedMetric(name, "n")) == (
            f"metric.name '{name}' doesn't match with the pattern '{pattern}'"
        )
    assert validate_metric(ReportedMetric("a", "")) == "metric.node_id must not be empty"
    assert validate_metric(ReportedMetric("a", "n" * 128)) is None
    assert validate_metric(ReportedMetric("a", "é" * 65)) == (
        f"metric.node_id '{'é' * 65}' cannot be longer than 128 characters"  # bytes, as Go's len()
    )
    assert validate_metric(ReportedMetric("a", "n", float("inf"))) is not None
