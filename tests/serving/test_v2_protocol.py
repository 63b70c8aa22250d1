"""The Open Inference Protocol's rules in process: strict datatypes, parameters, requested
outputs, binary tensor data and compressed bodies by hand, and the error body on every
path under /v2 (routing's 404 and 405 included)."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .conftest import open_client
from .support import MODEL

if TYPE_CHECKING:
    from starlette.testclient import TestClient

INFER = f"/v2/models/{MODEL}/infer"


@pytest.fixture
def client(served: dict[str, Any], make_server: Callable[..., Any]) -> Iterator[TestClient]:
    from modelyard.server.app import create_app

    server, _ = make_server(served["yard"])
    with open_client(create_app(served["yard"], models=server)) as client:
        yield client


def tensor(name: str, data: list[Any], datatype: str = "FP64", **extra: Any
           ) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data, **extra}


def refused(client: TestClient, body: Any, **kwargs: Any) -> str:
    """The error message of a request the server refuses with 400."""
    response = client.post(INFER, json=body, **kwargs)
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]
    assert "instances" not in message and message != "ModelyardError"
    return message


GOOD = [tensor("age", [30.0, 50.0]), tensor("vehicle_value", [1e4, 2e4])]


def test_datatypes_are_strict_and_errors_name_the_element(client: TestClient) -> None:
    assert "age[1]: an INT64 tensor holds a whole number" in refused(
        client, {"inputs": [tensor("age", [30, 2.5], "INT64"), GOOD[1]]})
    assert "age[0]: a BOOL tensor holds true or false, got 1" in refused(
        client, {"inputs": [tensor("age", [1, 0], "BOOL"), GOOD[1]]})
    assert "from -128 to 127, got 300" in refused(
        client, {"inputs": [tensor("age", [3, 300], "INT8"), GOOD[1]]})
    assert "age[1]: an FP64 tensor holds a number, got True" in refused(
        client, {"inputs": [tensor("age", [30, True]), GOOD[1]]})
    # the model's own checks, named after the tensor and the element
    message = refused(client, {"inputs": [tensor("age", ["30", "x"], "BYTES"), GOOD[1]]})
    assert "age[0]: expected a number" in message and "age[1]" in message
    matrix = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "BYTES",
                          "data": [["1", "2"], ["3", "4"]]}]}
    assert "x[0, 0]: expected a number" in refused(client, matrix)
    assert "missing input tensor 'vehicle_value'" in refused(client, {"inputs": GOOD[:1]})
    assert "unknown input tensor 'speed'" in refused(
        client, {"inputs": [*GOOD, tensor("speed", [1.0, 2.0])]})


def test_parameters_must_be_objects_of_scalars(client: TestClient) -> None:
    assert "parameters must be an object" in refused(
        client, {"inputs": GOOD, "parameters": [1]})
    assert "parameters.x must be a string, a number or a boolean" in refused(
        client, {"inputs": GOOD, "parameters": {"x": [1]}})
    assert "age.parameters.y" in refused(
        client, {"inputs": [{**GOOD[0], "parameters": {"y": {"z": 1}}}, GOOD[1]]})
    assert "binary_data must be true or false" in refused(
        client, {"inputs": GOOD, "outputs": [{"name": "x", "parameters": {"binary_data": 1}}]})
    assert "'id' must be a string" in refused(client, {"inputs": GOOD, "id": 7})
    ok = client.post(INFER, json={"inputs": GOOD, "parameters": {"priority": 1, "a": "b"}})
    assert ok.status_code == 200, ok.text


def test_only_the_requested_outputs_are_answered(client: TestClient) -> None:
    keys = tensor("customer_id", [1, 2], "INT64")
    everything = client.post(INFER, json={"inputs": [keys]}).json()["outputs"]
    names = [o["name"] for o in everything]
    assert names[-1] == "entity_status" and len(names) == 2
    only = client.post(INFER, json={"inputs": [keys], "outputs": [{"name": names[0]}]})
    assert [o["name"] for o in only.json()["outputs"]] == [names[0]]
    assert "unknown output 'nope'" in refused(
        client, {"inputs": GOOD, "outputs": [{"name": "nope"}]})
    assert "'entity_status'" not in refused(  # not an output when the inputs are sent
        client, {"inputs": GOOD, "outputs": [{"name": "entity_status"}]}).split(";")[1]


def _binary_request(tensors: list[tuple[str, str, bytes, int]], extra: bytes = b"",
                    **top: Any) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [
        {"name": n, "shape": [count], "datatype": t, "parameters": {"binary_data_size": len(b)}}
        for n, t, b, count in tensors], **top}).encode()
    return header + b"".join(b for _, _, b, _ in tensors) + extra, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream"}


def test_binary_tensor_data_both_ways(client: TestClient) -> None:
    ages, values = np.array([30.0, 50.0]), np.array([1e4, 2e4])
    as_json = client.post(INFER, json={"inputs": GOOD}).json()["outputs"][0]
    body, headers = _binary_request([("age", "FP64", ages.tobytes(), 2),
                                     ("vehicle_value", "FP32",
                                      values.astype("<f4").tobytes(), 2)],
                                    parameters={"binary_data_output": True})
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    size = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:size])
    [output] = header["outputs"]
    assert output["parameters"]["binary_data_size"] == 16 and "data" not in output
    got = np.frombuffer(response.content[size:], dtype="<f8")
    np.testing.assert_allclose(got, as_json["data"])
    # a BYTES tensor: each element a 4-byte length, then its bytes
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"30", b"old"))
    body, headers = _binary_request([("age", "BYTES", words, 2),
                                     ("vehicle_value", "FP64", values.tobytes(), 2)])
    assert "age[1]: expected a number" in client.post(
        INFER, content=body, headers=headers).json()["error"]


def test_broken_binary_data_is_refused_with_the_reason(client: TestClient) -> None:
    ages, values = np.array([30.0, 50.0]).tobytes(), np.array([1e4, 2e4]).tobytes()

    def error(body: bytes, headers: dict[str, str]) -> str:
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 400, response.text
        return str(response.json()["error"])

    body, headers = _binary_request([("age", "FP64", ages, 2),
                                     ("vehicle_value", "FP64", values, 2)], extra=b"xx")
    assert "2 bytes of binary data follow" in error(body, headers)
    body, headers = _binary_request([("age", "FP64", ages[:12], 2),
                                     ("vehicle_value", "FP64", values, 2)])
    assert "input 'age': 12 bytes of binary data, but 2 FP64 values take 16" in error(
        body, headers)
    body, headers = _binary_request([("age", "BOOL", b"\x01\x02", 2),
                                     ("vehicle_value", "FP64", values, 2)])
    assert "input age[1]: a BOOL byte must be 0 or 1" in error(body, headers)
    body, headers = _binary_request([("age", "FP64", ages, 2),
                                     ("vehicle_value", "FP64", values, 2)])
    assert "Inference-Header-Content-Length" in error(
        body, {**headers, "Inference-Header-Content-Length": "99999"})
    assert "binary_data_size is 16 but only 0" in error(
        body[:int(headers["Inference-Header-Content-Length"])], headers)
    assert "needs the Inference-Header-Content-Length header" in error(body, {})


def test_compressed_bodies(client: TestClient) -> None:
    body = json.dumps({"inputs": GOOD}).encode()
    plain = client.post(INFER, content=body).json()["outputs"]
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    for coding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                           ("deflate", raw.compress(body) + raw.flush())):
        response = client.post(INFER, content=packed, headers={"Content-Encoding": coding})
        assert response.status_code == 200, response.text
        assert response.json()["outputs"] == plain
    bad = client.post(INFER, content=body, headers={"Content-Encoding": "br"})
    assert bad.status_code == 400 and "Content-Encoding 'br'" in bad.json()["error"]
    broken = client.post(INFER, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert broken.status_code == 400 and "not valid gzip" in broken.json()["error"]
    many = {"inputs": [tensor("age", [30.0] * 200), tensor("vehicle_value", [1e4] * 200)]}
    packed = client.post(INFER, json=many, headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert len(packed.json()["outputs"][0]["data"]) == 200  # httpx undid the gzip
    identity = client.post(INFER, json=many, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in identity.headers


def test_every_v2_error_has_the_protocol_body(client: TestClient) -> None:
    cases = [
        ("get", "/v2/models/whatever/nothing", 404, "no endpoint at /v2/models/whatever"),
        ("get", "/v2/nothing", 404, "no endpoint at /v2/nothing"),
        ("get", INFER, 405, "GET is not allowed on"),
        ("post", f"/v2/models/{MODEL}/ready", 405, "GET"),
        ("get", f"/v2/models/{MODEL}/versions/9/ready", 404, "serves version 1, not 9"),
        ("get", f"/v2/models/{MODEL}/versions/9", 404, "serves version 1, not 9"),
        ("post", f"/v2/models/{MODEL}/versions/9/infer", 404, "serves version 1, not 9"),
        ("post", f"/v2/models/{MODEL}/versions/v1/infer", 404, "versions are whole numbers"),
        ("get", "/v2/models/nope", 404, "not served here"),
        ("get", "/v2/models/nope/ready", 404, "not served here"),
    ]
    for method, path, status, text in cases:
        response = client.request(method, path, **({"json": {"inputs": GOOD}}
                                                    if method == "post" else {}))
        assert response.status_code == status, (path, response.text)
        assert text in response.json()["error"], (path, response.text)
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready").json() == {
        "name": MODEL, "ready": True}
    assert client.get("/v1/nothing").json()["error"] == "NotFoundError"  # /v1 keeps its own


def test_a_version_in_the_path_is_answered_by_that_version(
        served: dict[str, Any], make_server: Callable[..., Any]) -> None:
    from modelyard.server.app import create_app

    from .support import NUMERIC, linear, register

    yard, training = served["yard"], served["training"]
    register(yard, linear(training, scale=2.0), training, features=NUMERIC,
             alias="challenger")
    server, _ = make_server(yard, canary={MODEL: "challenger:50%"})
    with open_client(create_app(yard, models=server)) as client:
        assert client.get(f"/v2/models/{MODEL}").json()["versions"] == ["1", "2"]
        assert client.get(f"/v2/models/{MODEL}/versions/2/ready").json()["ready"]
        answers = {}
        for version in ("1", "2"):
            for _ in range(5):  # whatever the canary's share, the version asked answers
                body = client.post(f"/v2/models/{MODEL}/versions/{version}/infer",
                                   json={"inputs": GOOD}).json()
                assert body["model_version"] == version
                answers[version] = body
        assert answers["1"]["parameters"]["role"] == "primary"
        assert answers["2"]["parameters"]["role"] == "canary"
        first, second = (answers[v]["outputs"][0]["data"] for v in ("1", "2"))
        assert second == pytest.approx([2 * v for v in first], rel=1e-3)
