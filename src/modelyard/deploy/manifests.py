"""Kubernetes manifests for a bundle: Deployment, Service and HorizontalPodAutoscaler, or a
KServe ``InferenceService`` whose predictor is modelyard's V2 server.

The manifests hold no secret: the stores' addresses and credentials come from a Secret the
operator creates (``<app>-store``, from ``store.env``), referenced with ``envFrom``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")
_DNS_CHARS = re.compile(r"[^a-z0-9\-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """A Kubernetes object name (RFC 1123 label) made from any model name and alias."""
    name = _DNS_CHARS.sub("-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)[:limit].strip("-")
    return name or "model"


def label_value(text: str) -> str:
    """A label value: up to 63 of ``[A-Za-z0-9_.-]``, starting and ending alphanumeric."""
    value = _LABEL_CHARS.sub("-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


@dataclass(frozen=True)
class Workload:
    """What every manifest of one bundle shares."""

    app: str  # object name
    image: str
    command: list[str]
    port: int
    model: str
    reference: str
    replicas: int
    max_replicas: int
    cpu_target: int
    cpu_request: str
    memory_request: str
    memory_limit: str
    namespace: str | None

    @property
    def secret(self) -> str:
        return dns_label(f"{self.app}-store", 253)

    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "modelyard-serve",
                "app.kubernetes.io/instance": self.app,
                "app.kubernetes.io/managed-by": "modelyard",
                "modelyard.io/model": label_value(self.model) or "model"}

    def metadata(self, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.app, "labels": self.labels()}
        if self.namespace:
            data["namespace"] = self.namespace
        data.update(extra)
        return data

    def container(self, name: str) -> dict[str, Any]:
        """The server container, with probes on ``/readyz`` (stores answer, model loaded)
        and ``/healthz`` (the process answers)."""
        return {
            "name": name,
            "image": self.image,
            "command": list(self.command),
            "ports": [{"name": "http", "containerPort": self.port, "protocol": "TCP"}],
            "envFrom": [{"secretRef": {"name": self.secret}}],
            "startupProbe": {"httpGet": {"path": "/healthz", "port": self.port},
                             "periodSeconds": 2, "failureThreshold": 60},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": self.port},
                               "periodSeconds": 5, "timeoutSeconds": 3,
                               "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": self.port},
                              "periodSeconds": 10, "timeoutSeconds": 3,
                              "failureThreshold": 3},
            "resources": {"requests": {"cpu": self.cpu_request, "memory": self.memory_request},
                          "limits": {"memory": self.memory_limit}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": False,
                                "capabilities": {"drop": ["ALL"]}},
        }


def _pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}}


def deployment(w: Workload) -> dict[str, Any]:
    selector = {"app.kubernetes.io/instance": w.app}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": w.metadata(annotations={"modelyard.io/serves": w.reference}),
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": w.labels()},
                "spec": {"securityContext": _pod_security(),
                         "terminationGracePeriodSeconds": 30,
                         "containers": [w.container("server")]},
            },
        },
    }


def service(w: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": w.metadata(),
        "spec": {"type": "ClusterIP",
                 "selector": {"app.kubernetes.io/instance": w.app},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http",
                            "protocol": "TCP"}]},
    }


def autoscaler(w: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": w.metadata(),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": w.app},
            "minReplicas": w.replicas,
            "maxReplicas": w.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": w.cpu_target}}}],
        },
    }


def inference_service(w: Workload) -> dict[str, Any]:
    """A KServe v1beta1 ``InferenceService`` with a custom predictor container: KServe routes
    the Open Inference Protocol to it, which modelyard's ``/v2`` endpoints answer."""
    container = w.container("kserve-container")  # the name KServe requires
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": w.metadata(annotations={
            "modelyard.io/serves": w.reference,
            "serving.kserve.io/deploymentMode": "RawDeployment",
            "serving.kserve.io/autoscalerClass": "hpa",
            "serving.kserve.io/metric": "cpu",
            "serving.kserve.io/targetUtilizationPercentage": str(w.cpu_target)}),
        "spec": {"predictor": {
            "minReplicas": w.replicas,
            "maxReplicas": w.max_replicas,
            "securityContext": _pod_security(),
            "containers": [container],
        }},
    }


def kubernetes_manifests(w: Workload) -> dict[str, dict[str, Any]]:
    """File name -> manifest, for a plain Kubernetes cluster."""
    return {"deployment.yaml": deployment(w), "service.yaml": service(w),
            "hpa.yaml": autoscaler(w)}


def kserve_manifests(w: Workload) -> dict[str, dict[str, Any]]:
    return {"inferenceservice.yaml": inference_service(w)}


def to_yaml(manifest: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False))
