"""What garbage collection may not remove: every blob the metadata refers to.

One method over all domains, so that a store family (SQL today, REST later) answers in a few
set-based reads rather than garbage collection walking every run and version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["BlobReferences"]


class BlobReferences(ABC):
    @abstractmethod
    def referenced_blobs(self) -> dict[str, str]:
        """Every artifact-store digest some record refers to, with what refers to it (run
        artifact, model archive, ONNX twin, model spec, evaluation plot, reference profile,
        training set): a version's spec counts for every digest anywhere in it (reference
        profile, explanation background, training-set spine...)."""
