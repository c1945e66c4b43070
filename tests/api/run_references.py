"""What a run or a job refers to, made over HTTP (an uploaded pipeline, an experiment), and the resource
references that name them."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

API = "/apis/v1beta1"


def upload(client: FlaskClient, text: str, name: str) -> dict:
    response = client.post(f"{API}/pipelines/upload", query_string={"name": name}, content_type="multipart/form-data",
                           data={"uploadfile": (io.BytesIO(text.encode()), "p.yaml")})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def experiment(client: FlaskClient, name: str) -> dict:
    response = client.post(f"{API}/experiments", json={"name": name})
    assert response.status_code == 200
    return response.get_json()


def experiment_ref(experiment_id: str) -> dict:
    return {"key": {"type": "EXPERIMENT", "id": experiment_id}, "relationship": "OWNER"}


def version_ref(version_id: str) -> dict:
    return {"key": {"type": "PIPELINE_VERSION", "id": version_id}, "relationship": "CREATOR"}
