def test_create_and_get_experiment(client):
    created = client.post("/apis/v1beta1/experiments", json={"name": "training", "description": "d"})
    assert created.status_code == 200, created.get_json()
    body = created.get_json()
    assert set(body) == {"id", "name", "description", "created_at", "storage_state"}
    fetched = client.get(f"/apis/v1beta1/experiments/{body['id']}")
    assert fetched.get_json() == body
