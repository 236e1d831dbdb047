"""The deployments users start from the Prefect UI."""

from __future__ import annotations

from prefect.utilities.callables import parameter_schema

from flows.deployments import build_deployments
from flows.ingest import ingest


def test_every_flow_has_a_deployment() -> None:
    deployments = {d.name: d for d in build_deployments(limit=2)}
    assert sorted(deployments) == ["codebook", "corpus", "dataset", "ingest", "manifest", "tokens"]
    assert deployments["ingest"].entrypoint == "flows/ingest.py:ingest"
    assert all("videobert" in d.tags and d.concurrency_limit == 2 for d in deployments.values())


def test_ingest_parameters_become_a_form() -> None:
    """Prefect builds the UI form from this schema: the request model's fields appear in it."""
    schema = parameter_schema(ingest).model_dump()
    assert set(schema["properties"]) == {"request", "params_file"}
    request = schema["definitions"]["IngestRequest"]["properties"]
    assert {"ids_file", "howto100m_csv", "local_dir", "limit", "concurrency", "retry_error_type", "force"} <= set(request)
    assert request["limit"]["anyOf"][0]["minimum"] == 1
