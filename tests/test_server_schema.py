"""schemathesis against the OpenAPI schema of a real `prism serve`: generated requests (valid and
not) never get a 500, and every answer conforms to the schema (status codes, content types,
bodies). Bounded: a few examples per operation."""

from __future__ import annotations

import pytest
from server_helpers import env_with_plugin, hash_recipe, ingest_docs, serve

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schema")
    (folder / "media").mkdir()
    (folder / "media" / "q.png").write_bytes(b"\x89PNG bytes")
    recipe = hash_recipe(folder, extra="rerank: [{use: mmr, retriever: dense}]\n")
    env = {k: v for k, v in env_with_plugin(folder, PRISMRAG_CACHE_DIR=str(folder / "cache")).items()
           if k != "PRISM_API_KEY"}
    with serve([recipe], folder, "--media-root", str(folder / "media"), "--max-body-mb", "1", env=env) as base:
        ingest_docs(base)
        yield schemathesis.openapi.from_url(base + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_500_and_no_schema_violation(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance], timeout=30)
