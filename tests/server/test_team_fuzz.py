"""No body or parameter makes the team API answer 5xx: every route of its OpenAPI document,
with malformed, mistyped and oversized bodies and parameters, on records that exist."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from modelyard.backends.metadata.registry import VersionRecord
from tests._remote import InProcessServer

BODIES: list[bytes | None] = [
    None, b"{}", b"[]", b'"x"', b"not json", b'{"a": NaN}',
    b'{"name": 5, "info": {}, "points": [[1, 2]], "record": {"name": "m"},'
    b' "query": {"where": [{"entity": "nope"}]}, "entries": [{"path": 1}]}',
    b'{"params": {"a": "' + b"x" * 5000 + b'"}, "tags": {"": "v"}, "status": "weird",'
    b' "end_time": "x", "version": -1, "gates": [{"kind": "nope"}], "blobs": [1]}',
]
QUERIES: list[dict[str, str]] = [
    {}, {"id": "x", "limit": "-1", "version": "q", "key": "", "name": "", "filter": "((",
         "status": "nope", "alias": "", "order_by": "metrics."}]


@pytest.mark.slow
def test_no_request_gets_a_server_error(tmp_path: Path, project: Path) -> None:
    server = InProcessServer(tmp_path / "server")
    try:
        client = server.client()
        run = client.start_run("e")
        run.log_param("a", 1)
        run.log_metric("m", 1.0)
        client.tracking.buffer.flush()
        server.yard.models.store.add_version(VersionRecord(
            "m", 0, "sklearn", "0" * 64, 1, None, None, None, {}, 1, "me"))
        names = {"{run_id}": run.run_id, "{name}": "m", "{version}": "1",
                 "{alias}": "production", "{key}": "k", "{intent_id}": "i",
                 "{kind}": "feature_group", "{training_set_id}": "t", "{sha256}": "0" * 64}
        with httpx.Client(base_url=server.uri, transport=server.transport) as http:
            doc = http.get("/openapi.json").json()
            failures = []
            for path, item in doc["paths"].items():
                if not path.startswith("/api/"):
                    continue
                for name, value in names.items():
                    path = path.replace(name, value)
                for method in item:
                    for body in BODIES:
                        for query in QUERIES:
                            answer = http.request(method.upper(), path, content=body,
                                                  params=query)
                            if answer.status_code >= 500:
                                failures.append((method, path, body, query,
                                                 answer.text[:300]))
            assert failures == []
        client.close()
    finally:
        server.close()
