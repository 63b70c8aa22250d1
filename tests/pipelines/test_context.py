"""The run's output capture: bounded, first and last parts kept, echoed whole."""

from __future__ import annotations

import io
import logging

from modelyard.pipelines.context import LogCapture, capture_output


def test_output_is_bounded_keeping_the_beginning_and_the_end() -> None:
    echo = io.StringIO()
    sink = LogCapture(limit=100, echo=echo)
    with capture_output(sink):
        for i in range(200):
            print(f"line {i:03d}")
        logging.getLogger("somewhere").warning("the last word")
    text = sink.text()
    assert text.startswith("line 000\nline 001\n")
    assert text.rstrip().endswith("the last word")
    assert "characters left out" in text and len(text) < 200
    assert "line 100" not in text
    assert echo.getvalue().count("\n") == 201  # the echo saw everything


def test_small_output_is_kept_whole() -> None:
    sink = LogCapture(limit=1000)
    with capture_output(sink):
        print("hello")
    assert sink.text() == "hello\n"
