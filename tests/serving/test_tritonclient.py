"""A live ``modelyard serve`` driven by the real Triton client (``tritonclient.http``, sync and
asyncio), every call at its defaults: binary tensor data both ways, JSON, compressed
bodies, requested outputs, and errors that name the tensor.

One server process for the module, serving a regressor whose features live in the feature
store (so it also takes entity keys) and a classifier over a text input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as http
import tritonclient.http.aio as aio
from tritonclient.utils import InferenceServerException

from .support import (
    CLASSIFIER,
    MODEL,
    open_yard,
    regressor_and_classifier,
    start_serve,
    stop_serve,
)

pytestmark = pytest.mark.slow
AGES = np.array([30.0, 50.0, 64.5])
VALUES = np.array([10_000.0, 20_000.0, 35_000.0])
REGIONS = np.array([b"north", b"south", b"east"], dtype=object)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from modelyard import init_project

    root = tmp_path_factory.mktemp("triton") / "proj"
    init_project(root, "triton")
    yard = open_yard(root)
    try:
        regressor_and_classifier(yard)
    finally:
        yard.close()
    proc, base = start_serve(root, [f"{MODEL}@production", f"{CLASSIFIER}@production"],
                             root / "server.log")
    try:
        yield {"base": base, "url": base.removeprefix("http://")}
    finally:
        stop_serve(proc)


@pytest.fixture(scope="module")
def client(live: dict[str, Any]) -> Iterator[Any]:
    triton = http.InferenceServerClient(live["url"])
    yield triton
    triton.close()


def _numbers(binary: bool = True) -> list[Any]:
    age = http.InferInput("age", [len(AGES)], "FP64")
    age.set_data_from_numpy(AGES, binary_data=binary)
    value = http.InferInput("vehicle_value", [len(VALUES)], "FP64")
    value.set_data_from_numpy(VALUES, binary_data=binary)
    return [age, value]


def _v1(live: dict[str, Any], model: str, rows: list[dict[str, Any]]) -> list[Any]:
    response = httpx.post(f"{live['base']}/v1/models/{model}/predict",
                          json={"instances": rows}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def _rows(regions: bool = False) -> list[dict[str, Any]]:
    return [{"age": a, "vehicle_value": v, **({"region": r.decode()} if regions else {})}
            for a, v, r in zip(AGES.tolist(), VALUES.tolist(), REGIONS, strict=True)]


def test_health_and_metadata(client: Any) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, model_version="1")
    assert not client.is_model_ready(MODEL, model_version="7")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata(MODEL)
    assert meta["versions"] == ["1"] and meta["platform"] == "modelyard/onnx"
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        ("age", "FP64"), ("vehicle_value", "FP64")]
    assert client.get_model_metadata(MODEL, model_version="1") == meta
    classes = client.get_model_metadata(CLASSIFIER)
    assert ("region", "BYTES") in [(t["name"], t["datatype"]) for t in classes["inputs"]]
    with pytest.raises(InferenceServerException, match="serves version 1, not 7"):
        client.get_model_metadata(MODEL, model_version="7")


def test_binary_and_json_give_the_v1_predictions(client: Any, live: dict[str, Any]) -> None:
    expected = _v1(live, MODEL, _rows())
    binary = client.infer(MODEL, _numbers())  # binary inputs, binary outputs (the defaults)
    [output] = binary.get_response()["outputs"]
    assert "binary_data_size" in output["parameters"]
    got = binary.as_numpy(output["name"])
    assert got.dtype == np.float64 and got.shape == (3,)
    np.testing.assert_allclose(got, expected)
    as_json = client.infer(MODEL, _numbers(binary=False), request_id="r-1",
                           outputs=[http.InferRequestedOutput(output["name"],
                                                              binary_data=False)])
    assert as_json.get_response()["id"] == "r-1"
    assert as_json.get_response()["outputs"][0]["data"] == pytest.approx(expected)
    np.testing.assert_allclose(as_json.as_numpy(output["name"]), expected)
    versioned = client.infer(MODEL, _numbers(), model_version="1")
    np.testing.assert_allclose(versioned.as_numpy(output["name"]), expected)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_responses(client: Any, live: dict[str, Any],
                                           algorithm: str) -> None:
    many = 100  # enough rows for the answer to be compressed too
    expected = _v1(live, MODEL, _rows()) * many
    ages, values = http.InferInput("age", [3 * many], "FP64"), http.InferInput(
        "vehicle_value", [3 * many], "FP64")
    ages.set_data_from_numpy(np.tile(AGES, many))
    values.set_data_from_numpy(np.tile(VALUES, many))
    result = client.infer(MODEL, [ages, values], request_compression_algorithm=algorithm,
                          response_compression_algorithm=algorithm)
    name = result.get_response()["outputs"][0]["name"]
    np.testing.assert_allclose(result.as_numpy(name), expected)


def test_a_classifier_takes_and_gives_bytes_tensors(client: Any, live: dict[str, Any]
                                                    ) -> None:
    region = http.InferInput("region", [3], "BYTES")
    region.set_data_from_numpy(REGIONS)  # 4-byte length-prefixed elements
    result = client.infer(CLASSIFIER, [*_numbers(), region])
    [output] = result.get_response()["outputs"]
    assert output["datatype"] == "BYTES"
    labels = [v.decode() for v in result.as_numpy(output["name"])]
    assert labels == _v1(live, CLASSIFIER, _rows(regions=True))
    assert set(labels) <= {"high", "low"}


def test_entity_keys_look_features_up(client: Any, live: dict[str, Any]) -> None:
    keys = http.InferInput("customer_id", [3], "INT64")
    keys.set_data_from_numpy(np.array([1, 2, 10_000], dtype=np.int64))
    result = client.infer(MODEL, [keys])
    status = [v.decode() for v in result.as_numpy("entity_status")]
    assert status == ["found", "found", "missing"]
    response = httpx.post(f"{live['base']}/v1/models/{MODEL}/predict",
                          json={"entities": [{"customer_id": 1}, {"customer_id": 2}]},
                          timeout=30).json()
    name = next(o["name"] for o in result.get_response()["outputs"]
                if o["name"] != "entity_status")
    got = result.as_numpy(name)
    np.testing.assert_allclose(got[:2], response["predictions"])
    assert np.isnan(got[2])  # no stored features for that key: NaN in binary data
    only = client.infer(MODEL, [keys], outputs=[http.InferRequestedOutput("entity_status")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["entity_status"]


def test_errors_name_the_tensor(client: Any) -> None:
    text = http.InferInput("age", [3], "BYTES")
    text.set_data_from_numpy(np.array([b"30", b"old", b"50"], dtype=object))
    value = _numbers()[1]
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, [text, value])
    assert "age[0]" in caught.value.message() and "instances" not in caught.value.message()
    assert caught.value.status() == "400"
    with pytest.raises(InferenceServerException, match="unknown output 'nope'"):
        client.infer(MODEL, _numbers(), outputs=[http.InferRequestedOutput("nope")])
    with pytest.raises(InferenceServerException, match="missing input tensor 'vehicle_value'"):
        client.infer(MODEL, _numbers()[:1])
    with pytest.raises(InferenceServerException, match="not served here"):
        client.infer("nope", _numbers())
    with pytest.raises(InferenceServerException, match="serves version 1, not 3"):
        client.infer(MODEL, _numbers(), model_version="3")


def test_the_asyncio_client(live: dict[str, Any]) -> None:
    expected = _v1(live, MODEL, _rows())

    async def run() -> tuple[bool, bool, Any, str]:
        triton = aio.InferenceServerClient(live["url"])
        try:
            ready = await triton.is_model_ready(MODEL, model_version="1")
            live_ = await triton.is_server_live()
            result = await triton.infer(MODEL, _numbers(),
                                        request_compression_algorithm="gzip")
            try:
                await triton.infer(MODEL, _numbers()[:1])
            except InferenceServerException as exc:
                message = exc.message()
            return ready, live_, result, message
        finally:
            await triton.close()

    ready, live_, result, message = asyncio.run(run())
    assert ready and live_
    name = result.get_response()["outputs"][0]["name"]
    np.testing.assert_allclose(result.as_numpy(name), expected)
    assert "vehicle_value" in message
