"""The story reads at 80 columns (what a piped terminal gives): its tables never cut a name
or split a number, and one too wide for the console prints one block per row."""

from __future__ import annotations

import io

from rich.console import Console

from modelyard.demo import story

from .conftest import SmallDemo


def _words(output: str) -> set[str]:
    """Every whitespace-separated word: a cut name or a split number is missing."""
    return {w.strip(",") for w in output.split()}


def _tables_fit(output: str, width: int) -> bool:
    """Every table line fits ``width`` (prose, without gaps of two spaces, wraps where the
    terminal does)."""
    return all(len(line) <= width or "  " not in line.strip() for line in output.splitlines())


def test_the_story_reads_whole_at_80_columns(small_demo: SmallDemo) -> None:
    out = small_demo.output  # the small demo prints on an 80-column console
    words = _words(out)
    assert _tables_fit(out, 80)
    assert "…" not in out  # nothing cut short
    candidates = small_demo.state.results
    assert len(candidates) >= 3
    for found in candidates:  # every candidate with its figures, whole
        m = found.metrics
        assert {found.name, found.run_id[:8], f"{m['r2']:.3f}", f"{m['rmse']:,.0f}",
                f"{m['mae']:,.0f}"} <= words, found.name
    registry = small_demo.state.registry
    assert registry is not None
    for attempt in registry.attempts:
        assert attempt.candidate in words and attempt.role in " ".join(out.split())
    watch = small_demo.state.watch
    assert watch is not None and watch.months
    for month in watch.months:
        assert {f"{month.rows:,}", f"{month.labelled:,}", *month.drifted[:3]} <= words
    after = small_demo.state.after
    assert after is not None
    for month in after.months:  # the months after the retraining, the earlier rmse beside
        rmse, before = month.metrics.get("rmse"), month.before.get("rmse")
        assert {f"{month.rows:,}", f"{month.labelled:,}"} <= words
        assert rmse is None or f"{rmse:,.0f}" in words
        assert before is None or f"{before:,.0f}" in words
    for written in small_demo.state.files:
        assert {written.path.name, f"{written.rows:,}"} <= words


def test_a_table_too_wide_prints_one_block_per_row(small_demo: SmallDemo) -> None:
    console = Console(file=io.StringIO(), width=50, color_system=None)
    story.tell_registry(small_demo.state, console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    registry = small_demo.state.registry
    assert registry is not None
    names = [line.split()[1] for line in out.splitlines() if line.startswith("candidate ")]
    assert names == [a.candidate for a in registry.attempts]
    assert _tables_fit(out, 50) and "…" not in out


def test_the_monitoring_chapter_says_the_backfill_has_no_latency(
        small_demo: SmallDemo) -> None:
    out = " ".join(small_demo.output.split())
    assert "in one batch" in out and "they carry no latency" in out
    watch = small_demo.state.watch
    live = small_demo.state.live
    assert watch is not None and live is not None
    health = watch.health  # the serving step's own requests: each with its latency
    assert health["requests"] == live.requests and health["unmeasured"] == 0
    assert health["latency_ms"]["p50"] is not None
