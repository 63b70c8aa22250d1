"""``modelyard serve --workers N`` checks its models in a short-lived process, not its own."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import NotFoundError


def test_the_parent_loads_no_model_to_check_them(served: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.cli.serve import check_models
    from modelyard.serving import loaded
    from modelyard.serving.options import ServeOptions

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was loaded into the parent process")

    monkeypatch.setattr(loaded, "load_version", refuse)  # only in this process
    lines = check_models(ServeOptions.parse(["claims-model@production"], [], []), None)
    assert lines == ["  primary  claims-model@production -> version 1 (onnx)"]


def test_a_model_that_cannot_load_is_the_child_s_error_raised_here(
        served: dict[str, Any]) -> None:
    from modelyard.cli.serve import check_models
    from modelyard.serving.options import ServeOptions

    with pytest.raises(NotFoundError, match="no-such-model"):
        check_models(ServeOptions.parse(["no-such-model@production"], [], []), None)
