"""/healthz, /readyz, /openapi.json and /docs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import modelyard
from modelyard import Yard

from .conftest import ONLINE
from .test_features_endpoint import assert_error, post

if TYPE_CHECKING:
    from starlette.testclient import TestClient

MakeClient = Callable[[Yard], "TestClient"]

#: For what does not depend on the online store's backend.
sqlite_only = pytest.mark.parametrize("online_uri", ["sqlite"], indirect=True)


@sqlite_only
def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": modelyard.__version__}


def test_readyz_when_both_stores_answer(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready",
                               "checks": {"metadata_store": "ok", "online_store": "ok"}}


def test_readyz_names_an_unreachable_online_store(project: Path,
                                                  make_client: MakeClient) -> None:
    with modelyard.connect(project=project, online_uri="redis://127.0.0.1:1/0?prefix=gone",
                           capture_git=False, capture_packages=False) as yard:
        client = make_client(yard)
        error = assert_error(client.get("/readyz"), 503, "StorageError")
        assert "online store" in error["message"] and "127.0.0.1:1" in error["message"]
        assert error["details"]["failing"] == ["online_store"]
        assert error["details"]["checks"]["metadata_store"] == "ok"
        assert client.get("/healthz").status_code == 200  # alive all the same


@pytest.mark.postgres
def test_readyz_names_an_unreachable_metadata_store(project: Path, pg_uri: str,
                                                    make_client: MakeClient) -> None:
    import sqlalchemy as sa

    with modelyard.connect(pg_uri, project=project, capture_git=False,
                           capture_packages=False) as yard:
        client = make_client(yard)
        assert client.get("/readyz").status_code == 200
        url = sa.engine.make_url(pg_uri)
        admin = sa.create_engine(url.set(drivername="postgresql+psycopg", database="postgres"),
                                 isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
        finally:
            admin.dispose()
        error = assert_error(client.get("/readyz"), 503, "StorageError")
        assert error["message"].startswith("not ready: metadata store: ")
        assert error["details"]["failing"] == ["metadata_store"]
        assert error["details"]["checks"]["online_store"] == "ok"
        assert client.get("/healthz").status_code == 200


@sqlite_only
def test_openapi_document_is_valid_and_complete(client: TestClient) -> None:
    from openapi_spec_validator import validate

    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["version"] == modelyard.__version__
    served = {(route.path, method.lower()) for route in client.app.routes  # type: ignore[attr-defined]
              for method in route.methods - {"HEAD"}}
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert served == documented
    assert {"Error", "OnlineFeaturesRequest", "OnlineFeaturesResponse"} <= set(
        spec["components"]["schemas"])


def _validator(spec: dict[str, Any], name: str) -> Any:
    """A JSON Schema validator for one component schema of the document."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    document = {**spec, "$schema": "https://json-schema.org/draft/2020-12/schema"}
    registry: Registry = Registry().with_resource("urn:openapi",
                                                  Resource.from_contents(document))
    return Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"},
                                registry=registry)


@sqlite_only
def test_bodies_match_their_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    request = {"features": ["stats:*"], "entities": {"customer_id": [1, 2, 999]}}
    _validator(spec, "OnlineFeaturesRequest").validate(request)
    _validator(spec, "OnlineFeaturesRequest").validate(
        {"features": ["stats:city"], "entities": [{"customer_id": 1}], "at": None})
    _validator(spec, "OnlineFeaturesResponse").validate(post(client, request).json())
    _validator(spec, "Error").validate(post(client, {"features": 1}).json())
    _validator(spec, "Error").validate(client.get("/nowhere").json())
    _validator(spec, "Health").validate(client.get("/healthz").json())
    _validator(spec, "Ready").validate(client.get("/readyz").json())


@sqlite_only
def test_docs_page(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "swagger-ui-bundle.js" in page and 'url: "openapi.json"' in page
    for path in (ONLINE, "/healthz", "/readyz", "/openapi.json"):  # the offline listing
        assert f"<code>{path}</code>" in page
