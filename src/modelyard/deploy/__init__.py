"""Deployment bundles: what a container platform needs to run ``modelyard serve`` for a model.

:func:`write_bundle` turns a registered version into a folder that builds and runs anywhere
containers do: a Docker build context (requirements pinned from the version's recorded
environment, the server command, a health check) and Kubernetes manifests (Deployment,
Service, HorizontalPodAutoscaler) or a KServe ``InferenceService`` that runs modelyard's
Open Inference Protocol (V2) server.
"""

from modelyard.deploy.bundle import Bundle, BundleOptions, Target, write_bundle

__all__ = ["Bundle", "BundleOptions", "Target", "write_bundle"]
