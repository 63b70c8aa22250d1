"""The HTML monitoring report: a real drift and quality result from the monitoring core
with hand-built performance, estimate, health and alert sections; structure, escaping,
offline-ness, size, missing sections, history trends and the atomic write."""

from __future__ import annotations

import copy
import html
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring import build_profile, check_quality, detect_drift
from modelyard.monitoring.charts import (
    MAX_BARS,
    distribution_overlay,
    period_bars,
    trend,
    window_line,
    window_trend,
)
from modelyard.monitoring.check import summary_of
from modelyard.monitoring.html import MAX_OVERLAYS, render_html, write_html

HOSTILE = "<script>alert('col')</script>"
HOSTILE_CATEGORY = "<script>alert('cat')</script>"
NEW_CATEGORY = "</td><img src=x onerror=alert(1)>"
NUMERIC = ["age", "income", "claim_amount", "vehicle_age", "prior_claims", "tenure_months",
           "deductible", "premium", "credit_score", "distance_km", "n_drivers", "sum_insured",
           "price $ & <b>"]
SHIFTED = ["income", "claim_amount", "region", HOSTILE, "policy_start"]
SVG_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def frame(rows: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """20 columns: 13 numeric, 5 categorical, a flag and a timestamp; ``shifted`` moves
    the five columns in SHIFTED."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {name: rng.normal(50 + 10 * i, 5 + i, rows)
                            for i, name in enumerate(NUMERIC)}
    data["prior_claims"] = rng.poisson(1.5, rows)
    if shifted:
        data["income"] = data["income"] * 1.6
        data["claim_amount"] = data["claim_amount"] + 15
    region_mix = [0.2, 0.2, 0.2, 0.4] if shifted else [0.4, 0.3, 0.2, 0.1]
    data["region"] = rng.choice(["north", "south", "east", "west"], rows, p=region_mix)
    hostile = np.array([HOSTILE_CATEGORY, "plain", "<b>bold</b>"], dtype=object)
    data[HOSTILE] = hostile[rng.choice(3, rows, p=[0.1, 0.6, 0.3] if not shifted
                                       else [0.5, 0.3, 0.2])]
    if shifted:
        data[HOSTILE][rng.random(rows) < 0.05] = NEW_CATEGORY
    data["channel"] = rng.choice(["web", "agent", "phone"], rows, p=[0.5, 0.3, 0.2])
    data["vehicle_type"] = rng.choice([f"type_{i}" for i in range(30)], rows)
    data["policy_type"] = rng.choice(["basic", "plus", "premium"], rows)
    data["has_garage"] = rng.random(rows) < 0.4
    start = pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=180 if shifted else 0)
    data["policy_start"] = start + pd.to_timedelta(rng.integers(0, 365, rows), "D")
    return pd.DataFrame(data)


def predictions(data: pd.DataFrame) -> np.ndarray[Any, Any]:
    score = (data["claim_amount"] - 70) / 20 + (data["income"] - 60) / 40
    return np.asarray(1 / (1 + np.exp(-score)))


PERFORMANCE = {
    "task": "classification", "rows": 2_000, "labelled_rows": 1_234,
    "metrics": {"roc_auc": 0.8123, "accuracy": 0.7712, "f1": 0.6401},
    "changes": [
        {"metric": "roc_auc", "value": 0.8123, "reference": 0.8456, "change": -0.0333,
         "relative_change": -0.0394, "worse": True},
        {"metric": "accuracy", "value": 0.7712, "reference": 0.7689, "change": 0.0023,
         "relative_change": 0.003, "worse": False}],
    "reference_dataset": "validation-2024-03",
    "slices": {"region": {"north": {"roc_auc": 0.83, "rows": 400},
                          HOSTILE_CATEGORY: {"roc_auc": 0.71, "rows": 120}}},
    "periods": [{"start_us": 1_714_521_600_000_000 + d * 86_400_000_000,
                 "end_us": 1_714_521_600_000_000 + (d + 1) * 86_400_000_000,
                 "rows": 170 + d, "metrics": {"roc_auc": 0.84 - 0.005 * d, "accuracy": 0.77}}
                for d in range(7)],
    "skipped": {"log_loss": "one class only"}, "message": "",
}
ESTIMATE = {"method": "cbpe", "rows": 2_000, "calibrated": True,
            "metrics": {"roc_auc": 0.8201, "accuracy": 0.7794},
            "reference": {"roc_auc": 0.8456, "accuracy": 0.7689}, "message": None}
LATENCY = {"p50": 12.5, "p90": 40.2, "p99": 123.4, "mean": 18.9}
HEALTH = {
    "requests": 1_910, "rows": 2_000, "errors": 12, "error_rate": 0.00628,
    "rate_per_minute": 0.19, "latency_ms": LATENCY,
    "versions": {"3": {"requests": 310, "rows": 320, "errors": 9, "error_rate": 0.029,
                       "rate_per_minute": 0.03, "latency_ms": LATENCY},
                 "4": {"requests": 1_600, "rows": 1_680, "errors": 3, "error_rate": 0.0019,
                       "rate_per_minute": 0.16, "latency_ms": LATENCY}},
    "periods": [{"start_us": 1_714_521_600_000_000 + d * 86_400_000_000,
                 "requests": 260 + 5 * d, "errors": d % 3, "latency_p99_ms": 110.0 + d}
                for d in range(7)],
}
ALERTS = [  # as RuleOutcome.to_dict writes them
    {"rule": {"kind": "dataset_drift", "metric": None, "feature": None, "op": None,
              "bound": None, "relative": False, "name": None, "severity": "warning"},
     "label": "dataset drift", "status": "ok", "fired": False, "value": 0.26,
     "message": "26% of columns drifted", "evidence": {}},
    {"rule": {"kind": "feature_drift", "metric": "jensenshannon", "feature": HOSTILE,
              "op": ">", "bound": 0.2, "relative": False, "name": None,
              "severity": "critical"},
     "label": f"drift of {HOSTILE}", "status": "fired", "fired": True, "value": 0.41,
     "message": f"{HOSTILE} drifted", "evidence": {}},
]


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    reference = frame(6_000, 0)
    window = frame(2_000, 1, shifted=True)
    profile = build_profile(reference, predictions(reference), chunks=5)
    drift = detect_drift(profile, window, predictions(window)).to_dict()
    return {
        "model": "claims-model", "version": 4, "versions": [3, 4],
        "window": {"start": "2024-05-01T00:00:00+00:00", "end": "2024-05-08T00:00:00+00:00"},
        "checked_at": "2024-05-08T06:30:00+00:00", "rows": 2_000,
        "rows_per_version": {"3": 320, "4": 1_680},
        "reference": {"version": 4, "rows": 6_000},
        "drift": drift,
        "feature_statistics": {c["column"]: {"psi": 0.01 * i, "jensenshannon": 0.02 * i,
                                             "wasserstein": 0.5 * i}
                               for i, c in enumerate(drift["columns"])},
        "quality": check_quality(profile, window).to_dict(),
        "performance": PERFORMANCE, "estimate": ESTIMATE, "health": HEALTH,
        "alerts": ALERTS,
        "notes": ["labels arrive two days late", f"a note with {HOSTILE}"],
    }


@pytest.fixture(scope="module")
def page(result: dict[str, Any]) -> str:
    return render_html(result, history(4))


def history(count: int) -> list[dict[str, Any]]:
    return [{"checked_at": f"2024-04-{2 + 7 * i:02d}T06:30:00+00:00",
             "window": {"start": f"2024-03-{26 + 7 * i:02d}T00:00:00+00:00" if i == 0 else
                        f"2024-04-{7 * i - 5:02d}T00:00:00+00:00",
                        "end": f"2024-04-{2 + 7 * i:02d}T00:00:00+00:00"}, "rows": 1_900 + i,
             "drifted_share": 0.05 * i, "dataset_drift": False,
             "metrics": {"roc_auc": 0.84 - 0.01 * i}, "estimated": {"roc_auc": 0.83},
             "error_rate": 0.004 + 0.001 * i, "latency_p99_ms": 100.0 + i}
            for i in range(count)]


class StrictParser(HTMLParser):
    """Collects start tags and checks that every non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_startendtag(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.ids += [value for name, value in attrs if name == "id" and value]

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def parse(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


def section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def test_the_page_is_well_formed_and_has_every_section(page: str) -> None:
    parsed = parse(page)
    tags = parsed.tags
    assert len(parsed.ids) == len(set(parsed.ids))  # charts do not share ids
    assert tags.count("svg") == page.count("<svg")
    assert page.startswith("<!DOCTYPE html>") and "script" not in tags
    for anchor in ("alerts", "drift", "prediction-drift", "quality", "performance",
                   "estimate", "health", "history", "notes"):
        assert f'<section id="{anchor}">' in page
    assert "Monitoring report: claims-model" in page
    assert "version 4; in the window: 3 (320 rows), 4 (1,680 rows)" in page
    assert "6,000 rows" in page and "2024-05-08 06:30 UTC" in page
    assert "labels arrive two days late" in page


def test_every_drifted_column_is_named_and_plotted(result: dict[str, Any], page: str) -> None:
    drifted = result["drift"]["drifted_columns"]
    assert set(SHIFTED) <= set(drifted) and len(drifted) < MAX_OVERLAYS
    drift = section(page, "drift")
    assert drift.count("<svg") == len(drifted)
    for column in drifted:
        assert f'aria-label="{html.escape(column)}' in drift
    table = drift[drift.index("<table"):]
    positions = [table.index(f"<td>{html.escape(c)}</td>") for c in
                 [r["column"] for r in result["drift"]["columns"]]]
    first_clean = min(p for p, r in zip(positions, result["drift"]["columns"], strict=True)
                      if not r["drifted"])
    assert all(p < first_clean for p, r in zip(positions, result["drift"]["columns"],
                                               strict=True) if r["drifted"])
    # PSI and JS from feature_statistics (the 20th column has 0.19 and 0.38)
    assert "<th>PSI</th>" in drift and '<td class="n">0.19</td><td class="n">0.38</td>' in drift
    predictions_part = section(page, "prediction-drift")
    assert "prediction" in predictions_part and predictions_part.count("<svg") == 1


def test_user_text_is_escaped_everywhere(page: str) -> None:
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "<b>bold" not in page and "&lt;b&gt;bold" in page
    assert html.escape(HOSTILE) in section(page, "drift")
    assert html.escape(HOSTILE_CATEGORY) in section(page, "performance")  # a slice value
    assert "onerror" in section(page, "quality")  # the unseen category, escaped
    assert "price $ &amp; &lt;b&gt;" in page  # a dollar is not math


def test_the_page_is_offline_and_small(result: dict[str, Any], page: str) -> None:
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= SVG_NAMESPACES
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)
    assert "<!DOCTYPE svg" not in page and "<?xml" not in page
    for svg in re.findall(r"<svg\b.*?</svg>", page, re.DOTALL):
        ElementTree.fromstring(svg)  # each chart is well-formed XML on its own
    assert len(result["drift"]["columns"]) == 20 and len(result["drift"]["drifted_columns"]) >= 5
    assert len(page.encode()) < 400_000


def test_verdicts_and_numbers(page: str) -> None:
    cards = page[page.index('<div class="cards">'):page.index("</div>\n")]
    assert "roc_auc 0.8123" in cards and "-3.9% vs registered 0.8456" in cards
    assert "Estimated" in cards and "1 fired" in cards and "0.6%" in cards
    assert "123.4 ms" in section(page, "health") and "1,910" in section(page, "health")
    assert "version 3" in section(page, "health")
    assert "1,234 of 2,000 rows labelled" in section(page, "performance")
    alerts = section(page, "alerts")
    assert alerts.index("FIRED") < alerts.index("dataset drift")
    assert "<td>critical</td>" in alerts and "kind" not in alerts
    assert "Not computed: log_loss (one class only)." in section(page, "performance")
    flat = [{"rule": "error rate > 1%", "severity": "critical", "status": "fired",
             "fired": True, "value": 0.02, "message": "too many errors"}]
    assert "<td>error rate &gt; 1%</td><td>critical</td>" in render_html(
        {"model": "m", "alerts": flat, "drift": None})


def test_missing_sections_say_why(result: dict[str, Any]) -> None:
    bare: dict[str, Any] = {"model": "claims-model", "version": None, "versions": [],
            "window": {"start": "2024-05-01T00:00:00Z", "end": "2024-05-08T00:00:00Z"},
            "checked_at": "2024-05-08T06:30:00Z", "rows": 0, "reference": None,
            "drift": None, "feature_statistics": {}, "quality": None, "performance": None,
            "estimate": None, "health": None, "alerts": [], "notes": []}
    page = render_html(bare)
    parse(page)
    assert "<svg" not in page and "notes" not in page
    assert "No labels in this window yet: performance is not measured." in page
    assert "No serving logs in this window: health is not measured." in page
    assert "No drift result" in page and "Data quality was not checked" in page
    assert "No label-free estimate" in page and "No alert rules were evaluated." in page
    skipped = dict(bare, performance={"skipped": {}, "message": "the labels have no <id>",
                                      "metrics": {}})
    assert "Performance is not measured: the labels have no &lt;id&gt;." in render_html(skipped)


def test_history_trends_need_an_earlier_check(result: dict[str, Any], page: str) -> None:
    light = dict(result, drift=dict(result["drift"], columns=[], predictions=[]))
    alone = section(render_html(light), "history")
    assert "<svg" not in alone and "once an earlier check" in alone
    # the current result already last in the history (as the service passes it)
    assert section(render_html(light, [summary_of(light)]), "history") == alone
    two = section(render_html(light, [*history(1), summary_of(light)]), "history")
    assert two.count("<svg") == 4
    trends = section(page, "history")
    labels = re.findall(r'<svg role="img" aria-label="([^"]*)"', trends)
    assert labels == ["Share of drifted columns", "roc_auc", "Error rate", "p99 latency (ms)"]


def test_trends_are_drawn_on_the_monitored_windows(result: dict[str, Any]) -> None:
    # six monthly checks of January to June, all run within one minute
    light = dict(result, drift=dict(result["drift"], columns=[], predictions=[]))
    checks = [dict(summary_of(light), checked_at=f"2026-07-01T09:00:{i:02d}+00:00",
                   window={"start": f"2026-{m:02d}-01T00:00:00+00:00",
                           "end": f"2026-{m + 1:02d}-01T00:00:00+00:00"},
                   drifted_share=0.1 * i)
              for i, m in enumerate(range(1, 7))]
    current = dict(light, checked_at=checks[-1]["checked_at"], window=checks[-1]["window"])
    trends = section(render_html(current, checks), "history")
    share = trends[trends.index('aria-label="Share of drifted columns"'):]
    share = share[:share.index("</svg>")]
    ticks = re.findall(r"<text[^>]*>([^<]*)</text>", share)
    assert {"Feb", "Mar", "Apr", "May", "Jun"} <= set(ticks)
    assert "monitored window" in ticks
    assert not any(t.startswith("09:00") or t == "2026-Jul-01 09:00" for t in ticks)
    # one bar per check across its window, one marker at each window's middle
    assert share.count("<path") >= 6
    # a check without a readable window is left out, not drawn at the time it ran
    broken = [dict(checks[0], window={"start": "", "end": ""}), checks[-1]]
    assert "once an earlier check" in section(render_html(current, broken), "history")


def test_the_trend_line_breaks_across_a_gap_longer_than_its_windows() -> None:
    from datetime import datetime

    def month(m: int, year: int = 2025) -> tuple[datetime, datetime]:
        return datetime(year, m, 1), datetime(year + m // 12, m % 12 + 1, 1)

    xs, ys = window_line([(month(1), 0.1), (month(2), 0.2), (month(11, 2026), 0.3)])
    assert xs[:2] == [datetime(2025, 1, 16, 12), datetime(2025, 2, 15)]
    assert ys[:2] == [0.1, 0.2] and math.isnan(ys[2]) and ys[3] == 0.3
    assert len(xs) == 4


def test_window_trend_refuses_bad_windows() -> None:
    with pytest.raises(InvalidInputError, match="windows"):
        window_trend([("yesterday", "today")], {"x": [1.0]}, "bad")
    with pytest.raises(InvalidInputError, match="values for 1 windows"):
        window_trend([("2026-01-01", "2026-02-01")], {"x": [1.0, 2.0]}, "bad")


def test_overlays_are_capped(result: dict[str, Any]) -> None:
    many = copy.deepcopy(result)
    template = next(c for c in many["drift"]["columns"] if c["column"] == "income")
    many["drift"]["columns"] += [dict(template, column=f"extra_{i}") for i in range(15)]
    drift = section(render_html(many), "drift")
    drifted = sum(c["drifted"] for c in many["drift"]["columns"])
    assert drift.count("<svg") == MAX_OVERLAYS
    assert f"{drifted - MAX_OVERLAYS} more not plotted" in drift


def test_write_html_is_atomic(result: dict[str, Any], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    light = dict(result, drift=None, performance=None, health=None)
    folder = tmp_path / "reports"  # tmp_path also holds the user config folder
    folder.mkdir()
    target = folder / "report.html"
    target.write_text("old")
    target.chmod(0o640)
    assert write_html(target, light, history(4)) == target
    assert target.read_text(encoding="utf-8") == render_html(light, history(4))
    assert [p.name for p in folder.iterdir()] == ["report.html"]
    assert target.stat().st_mode & 0o777 == 0o640  # kept from the file it replaced
    fresh = write_html(folder / "fresh.html", light)
    assert fresh.stat().st_mode & 0o777 == 0o644
    fresh.unlink()
    with pytest.raises(InvalidInputError):
        write_html(target, "not a result")  # type: ignore[arg-type]
    assert [p.name for p in folder.iterdir()] == ["report.html"]
    with pytest.raises(InvalidInputError, match="does not exist"):
        write_html(folder / "nowhere" / "report.html", result)

    def full_disk(*args: Any) -> None:
        raise OSError("no space left on device")

    before = target.read_text(encoding="utf-8")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="no space"):
        write_html(target, dict(light, model="other"))
    assert [p.name for p in folder.iterdir()] == ["report.html"]  # the temporary is gone
    assert target.read_text(encoding="utf-8") == before


def test_charts(result: dict[str, Any]) -> None:
    timestamps = next(c for c in result["drift"]["columns"] if c["kind"] == "timestamp")
    assert distribution_overlay(timestamps).startswith("<svg ")
    wide = next(c for c in result["drift"]["columns"] if c["column"] == "vehicle_type")
    assert len(wide["categories"]) > MAX_BARS
    # the empty "other" bar is left out, the smallest categories merged into one
    assert f"other (+{len(wide['categories']) - (MAX_BARS - 1)})" in (
        distribution_overlay(wide))
    assert "<svg" in trend([("a", 1.0), ("b", None), ("c", 2.0)], "labels")
    assert "<svg" in trend([(1.0, 1.0), (2.0, 3.0)], "numbers", reference=2.0)
    with pytest.raises(InvalidInputError):
        distribution_overlay(dict(wide, current=None))
    with pytest.raises(InvalidInputError):
        period_bars(["2024-05-01T00:00:00Z"], {"requests": [1.0, 2.0]}, "bad")
    with pytest.raises(InvalidInputError):
        render_html(result, "history")  # type: ignore[arg-type]
