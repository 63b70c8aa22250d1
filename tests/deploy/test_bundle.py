"""``write_bundle`` and ``modelyard deploy bundle``: files, pins, manifests, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sklearn
import yaml

import modelyard
from modelyard import Yard
from modelyard.deploy import BundleOptions, Target, write_bundle
from modelyard.deploy.manifests import dns_label, label_value
from modelyard.errors import InvalidInputError, NotFoundError
from tests.deploy.conftest import MODEL

#: the oldest Kubernetes release still supported upstream when this was written, and the newest
#: schemas kubernetes-validate ships
K8S_VERSIONS = ["1.31", kubernetes_validate.latest_version()]


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_the_context_pins_the_versions_libraries_and_its_environment(
        served: Yard, tmp_path: Path) -> None:
    import numpy

    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "b")
    assert bundle.version == 1
    assert bundle.files == sorted([
        ".dockerignore", "Dockerfile", "README.md", "bundle.json", "constraints.txt",
        "kubernetes/deployment.yaml", "kubernetes/hpa.yaml", "kubernetes/service.yaml",
        "requirements.txt", "store.env.example"])
    requirements = [line for line in (bundle.path / "requirements.txt").read_text().splitlines()
                    if not line.startswith("#")]
    assert requirements[0] == f"modelyard[serving,postgres,redis]=={modelyard.__version__}"
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    constraints = (bundle.path / "constraints.txt").read_text().splitlines()
    # the run's environment pins what the requirements pull in, and never contradicts them
    assert f"pyarrow=={__import__('pyarrow').__version__}" in constraints
    assert not any(line.startswith(("modelyard==", "scikit-learn==")) for line in constraints)
    assert f"numpy=={numpy.__version__}" in requirements + constraints

    dockerfile = (bundle.path / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install --find-links ./wheels -r requirements.txt -c constraints.txt" in dockerfile
    assert "/readyz" in dockerfile and "USER 10001" in dockerfile
    assert f"CMD {json.dumps(bundle.command)}" in dockerfile
    assert bundle.command == ["modelyard", "serve", f"{MODEL}@production", "--host", "0.0.0.0",
                              "--port", "8080", "--workers", "2"]

    recorded = json.loads((bundle.path / "bundle.json").read_text())
    assert recorded["reference"] == f"{MODEL}@production" and recorded["version"] == 1
    for name, digest in recorded["files"].items():
        assert hashlib.sha256((bundle.path / name).read_bytes()).hexdigest() == digest
    assert set(recorded["files"]) == set(bundle.files) - {"bundle.json"}


def test_kubernetes_manifests_are_valid_and_wired_together(served: Yard,
                                                           tmp_path: Path) -> None:
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "b", BundleOptions(replicas=3, max_replicas=7,
                                                        namespace="ml-serving"))
    folder = bundle.path / "kubernetes"
    docs = {p.name: load(p) for p in folder.glob("*.yaml")}
    for version in K8S_VERSIONS:
        for doc in docs.values():
            kubernetes_validate.validate(doc, version, strict=True)

    deployment, service, hpa = docs["deployment.yaml"], docs["service.yaml"], docs["hpa.yaml"]
    app = "claims-model-v2-production"
    assert {d["metadata"]["name"] for d in docs.values()} == {app}
    assert {d["metadata"]["namespace"] for d in docs.values()} == {"ml-serving"}
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["command"] == bundle.command
    assert container["envFrom"] == [{"secretRef": {"name": f"{app}-store"}}]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": app}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 7)
    assert deployment["spec"]["replicas"] == 3
    # the autoscaler's CPU target needs a CPU request to be measured against
    assert container["resources"]["requests"]["cpu"] == "500m"


def test_a_broken_manifest_is_caught_by_the_same_validation(served: Yard,
                                                            tmp_path: Path) -> None:
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "b")
    deployment = load(bundle.path / "kubernetes" / "deployment.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_the_kserve_target_runs_the_v2_server_as_a_custom_predictor(served: Yard,
                                                                    tmp_path: Path) -> None:
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}:1", tmp_path / "b",
                          BundleOptions(target=Target.kserve, image="registry.local/claims:1"))
    assert "kserve/inferenceservice.yaml" in bundle.files
    assert not any(name.startswith("kubernetes/") for name in bundle.files)
    isvc = load(bundle.path / "kserve" / "inferenceservice.yaml")
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert isvc["metadata"]["name"] == dns_label(isvc["metadata"]["name"]) == "claims-model-v2-v1"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] <= predictor["maxReplicas"]
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry.local/claims:1"
    assert container["command"][:3] == ["modelyard", "serve", f"{MODEL}:1"]
    # the predictor is a pod spec: its container and security context hold to Kubernetes' schema
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
           "spec": {"containers": [container], "securityContext": predictor["securityContext"]}}
    kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)


def test_target_none_writes_the_build_context_only(served: Yard, tmp_path: Path) -> None:
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "b", BundleOptions(target=Target.none))
    assert not any("/" in name for name in bundle.files)
    assert (bundle.path / "wheels").is_dir()


@pytest.mark.parametrize(("text", "expected"), [
    ("claims_model.V2-production", "claims-model-v2-production"),
    ("--Weird__Name--", "weird-name"),
    ("x" * 200, "x" * 63),
    ("___", "model"),
])
def test_object_names_are_kubernetes_labels(text: str, expected: str) -> None:
    assert dns_label(text) == expected


def test_label_values_keep_what_kubernetes_allows() -> None:
    assert label_value("claims_model.V2") == "claims_model.V2"
    assert label_value("-a b-") == "a-b"
    assert len(label_value("m" * 128)) == 63


def test_the_bundle_holds_no_store_address(served: Yard, tmp_path: Path,
                                           project: Path) -> None:
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production",
                          tmp_path / "b")
    text = "".join((bundle.path / name).read_text() for name in bundle.files)
    assert str(project) not in text and "sqlite:" not in text
    assert "MODELYARD_URI=\n" in (bundle.path / "store.env.example").read_text()


def test_a_folder_in_use_is_refused_unless_forced(served: Yard, tmp_path: Path) -> None:
    out = tmp_path / "bundles" / "b"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty") as caught:
        write_bundle(served.models, served.tracking, f"{MODEL}@production", out)
    assert caught.value.details["field"] == "out"
    assert (out / "notes.txt").read_text() == "mine"
    bundle = write_bundle(served.models, served.tracking, f"{MODEL}@production", out,
                          force=True)
    assert not (out / "notes.txt").exists() and (out / "Dockerfile").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["b"]  # no staging folder left
    assert bundle.path == out


@pytest.mark.parametrize(("options", "field"), [
    (BundleOptions(replicas=4, max_replicas=2), "max_replicas"),
    (BundleOptions(port=0), "port"),
    (BundleOptions(cpu_target=150), "cpu_target"),
    (BundleOptions(memory_limit="2 gigs"), "memory_limit"),
    (BundleOptions(namespace="ML_Serving"), "namespace"),
    (BundleOptions(wheels=(Path("missing.whl"),)), "wheels"),
])
def test_bad_options_name_their_field(served: Yard, tmp_path: Path, options: BundleOptions,
                                      field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        write_bundle(served.models, served.tracking, f"{MODEL}@production", tmp_path / "b",
                     options)
    assert caught.value.details["field"] == field
    assert not (tmp_path / "b").exists()


def test_an_unknown_model_or_alias_is_not_found(served: Yard, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="staging"):
        write_bundle(served.models, served.tracking, f"{MODEL}@staging", tmp_path / "b")
    with pytest.raises(NotFoundError):
        write_bundle(served.models, served.tracking, "nobody@production", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_cli_writes_a_bundle_and_refuses_a_bad_target(served: Yard,
                                                          tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelyard.cli.app import app

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    out = tmp_path / "cli-bundle"
    result = invoke("deploy", "bundle", f"{MODEL}@production", "--out", str(out),
                    "--target", "kserve", "--replicas", "1", "--max-replicas", "3")
    assert result.exit_code == 0, result.output
    assert "kserve/inferenceservice.yaml" in result.output
    assert load(out / "kserve" / "inferenceservice.yaml")["spec"]["predictor"]["maxReplicas"] == 3
    result = invoke("deploy", "bundle", f"{MODEL}@production", "--out", str(tmp_path / "x"),
                    "--target", "swarm")
    assert isinstance(result.exception, InvalidInputError)
    assert "--target must be one of kubernetes, kserve, none" in str(result.exception)
