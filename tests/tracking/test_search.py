"""search_runs, best_run and compare_runs on both backends, plus a property test."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelyard
from modelyard import InvalidFilterError, InvalidInputError, NotFoundError, Yard

BASE_COLUMNS = ["run_id", "experiment", "name", "status", "start_time", "end_time",
                "parent_run_id", "user", "host"]

pytestmark = pytest.mark.over_rest


@dataclass
class Runs:
    a: str  # alpha-1: depth 3, lr 0.1, r2 0.8, team red
    b: str  # alpha-2: depth 5, lr 0.1, r2 0.9, team blue
    c: str  # beta: depth 7, lr 0.01, no r2, rmse 2.0, team Red, failed
    d: str  # other experiment: depth 5, r2 0.95


def _make_runs(yard: Yard) -> Runs:
    ids = []
    specs = [
        ("alpha-1", {"depth": 3, "lr": 0.1}, {"r2": 0.8, "rmse": 3.0}, "red"),
        ("alpha-2", {"depth": 5, "lr": 0.1}, {"r2": 0.9, "rmse": 2.5}, "blue"),
    ]
    for name, params, metrics, team in specs:
        with yard.start_run("search", name=name) as run:
            run.log_params(params)
            run.log_metrics(metrics)
            run.set_tag("team", team)
        ids.append(run.run_id)
        time.sleep(0.003)  # distinct start times
    with pytest.raises(RuntimeError), yard.start_run("search", name="beta") as run:
        run.log_params({"depth": 7, "lr": 0.01})
        run.log_metric("rmse", 2.0)
        run.set_tag("team", "Red")
        raise RuntimeError("diverged")
    ids.append(run.run_id)
    time.sleep(0.003)
    with yard.start_run("other", name="gamma") as run:
        run.log_params({"depth": 5})
        run.log_metric("r2", 0.95)
    ids.append(run.run_id)
    return Runs(*ids)


@pytest.fixture
def runs(yard: Yard) -> Runs:
    return _make_runs(yard)


def ids(frame: pd.DataFrame) -> list[str]:
    return list(frame["run_id"])


# --- filters --------------------------------------------------------------------------------


FILTER_CASES: list[tuple[str, str | None]] = [
    ("metrics.r2 > 0.85", "b"),
    ("metrics.r2 >= 0.8", "ab"),
    ("metrics.r2 = 0.8", "a"),
    ("metrics.r2 != 0.8", "b"),
    ("metrics.rmse < 2.5", "c"),
    ("metrics.rmse <= 2.5 and metrics.r2 > 0", "b"),
    ("params.depth = '5'", "b"),
    ("params.depth = 5", "b"),
    ("params.depth != '5'", "ac"),
    ("params.depth IN ('3', '7')", "ac"),
    ("params.depth NOT IN ('3', '7')", "b"),
    ("params.lr = '0.1' and params.depth > '4'", None),
    ("tags.team = 'red'", "a"),
    ("tags.team LIKE 'R%'", "c"),
    ("tags.team ILIKE 'r%'", "ac"),
    ("tags.team ILIKE 'RED'", "ac"),
    ("tags.team IN ('blue', 'Red')", "bc"),
    ("status = 'failed'", "c"),
    ("status != 'failed'", "ab"),
    ("status IN ('finished')", "ab"),
    ("attributes.name LIKE 'alpha%'", "ab"),
    ("run_name = 'beta'", "c"),
    ("name ILIKE 'ALPHA-_'", "ab"),
    ("params.nope = '1'", ""),
]


@pytest.mark.over_rest(server=True)
def test_filters(yard: Yard, runs: Runs) -> None:
    for flt, expected in FILTER_CASES:
        if expected is None:  # '>' is refused for a param: it is a string
            with pytest.raises(InvalidFilterError):
                yard.search_runs("search", filter=flt)
            continue
        found = set(ids(yard.search_runs("search", filter=flt)))
        assert found == {getattr(runs, x) for x in expected}, flt


def test_filter_on_run_id_parent_and_start_time(yard: Yard, runs: Runs) -> None:
    b = yard.get_run(runs.b)
    assert ids(yard.search_runs("search", filter=f"run_id = '{runs.b}'")) == [runs.b]
    after = yard.search_runs("search", filter=f"start_time >= {b.info.start_time}",
                             order_by="start_time")
    assert ids(after) == [runs.b, runs.c]
    assert set(ids(yard.search_runs("search", filter=f"start_time < {b.info.start_time}")
                   )) == {runs.a}
    with yard.start_run("search", parent=runs.a) as child:
        pass
    assert ids(yard.search_runs(filter=f"parent_run_id = '{runs.a}'")) == [child.run_id]


# --- ordering and limits --------------------------------------------------------------------


def test_order_by_metric_puts_missing_values_last(yard: Yard, runs: Runs) -> None:
    desc = yard.search_runs("search", order_by=["metrics.r2 desc"])
    assert ids(desc) == [runs.b, runs.a, runs.c]
    asc = yard.search_runs("search", order_by="metrics.r2")
    assert ids(asc) == [runs.a, runs.b, runs.c]


def test_order_by_params_and_attributes(yard: Yard, runs: Runs) -> None:
    assert ids(yard.search_runs("search", order_by="params.depth desc")) == [
        runs.c, runs.b, runs.a]
    assert ids(yard.search_runs("search", order_by=["params.lr", "metrics.rmse"])) == [
        runs.c, runs.b, runs.a]
    assert ids(yard.search_runs("search", order_by="name")) == [runs.a, runs.b, runs.c]
    assert ids(yard.search_runs("search")) == [runs.c, runs.b, runs.a]  # newest first


def test_limit(yard: Yard, runs: Runs) -> None:
    top = yard.search_runs("search", order_by="metrics.r2 desc", limit=1)
    assert ids(top) == [runs.b]
    assert len(yard.search_runs(limit=2)) == 2
    assert len(yard.search_runs(limit=100)) == 4


def test_bad_limit(yard: Yard) -> None:
    for limit in (0, -1, 1.5, "3", True):
        with pytest.raises(InvalidInputError, match="limit"):
            yard.search_runs(limit=limit)  # type: ignore[arg-type]


def test_several_experiments(yard: Yard, runs: Runs) -> None:
    assert set(ids(yard.search_runs(["search", "other"]))) == {runs.a, runs.b, runs.c, runs.d}
    assert set(ids(yard.search_runs())) == {runs.a, runs.b, runs.c, runs.d}
    other = yard.tracking.get_experiment("other").experiment_id
    assert ids(yard.search_runs(other)) == [runs.d]
    both = yard.search_runs(["search", "other"], filter="params.depth = '5'")
    assert set(ids(both)) == {runs.b, runs.d}
    assert set(both["experiment"]) == {"search", "other"}


def test_unknown_experiment_and_bad_filter(yard: Yard, runs: Runs) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        yard.search_runs("nope")
    with pytest.raises(NotFoundError):
        yard.search_runs(["search", "nope"])
    with pytest.raises(NotFoundError):
        yard.search_runs(9999)
    assert [e.name for e in yard.list_experiments()] == ["search", "other"]  # none created
    with pytest.raises(InvalidFilterError) as info:
        yard.search_runs("search", filter="metrics.r2 >> 1")
    assert info.value.details["position"] == 12
    with pytest.raises(InvalidFilterError):
        yard.search_runs("search", order_by="metrics.r2 upwards")


# --- the DataFrame --------------------------------------------------------------------------


def test_frame_columns_and_types(yard: Yard, runs: Runs) -> None:
    frame = yard.search_runs("search", order_by="name")
    assert list(frame.columns[:len(BASE_COLUMNS)]) == BASE_COLUMNS
    extra = list(frame.columns[len(BASE_COLUMNS):])
    assert extra[:4] == ["metrics.r2", "metrics.rmse", "params.depth", "params.lr"]
    assert "tags.team" in extra
    assert frame["metrics.r2"].dtype == "float64"
    assert frame["metrics.r2"].tolist()[:2] == [0.8, 0.9]
    assert pd.isna(frame["metrics.r2"].iloc[2])
    assert frame["params.depth"].tolist() == ["3", "5", "7"]
    assert all(isinstance(v, str) for v in frame["params.lr"])
    for col in ("start_time", "end_time"):
        assert isinstance(frame[col].dtype, pd.DatetimeTZDtype)
        assert str(frame[col].dt.tz) == "UTC"
    assert frame["status"].tolist() == ["finished", "finished", "failed"]
    assert set(frame["experiment"]) == {"search"}
    start = yard.get_run(runs.a).info.start_time
    assert frame["start_time"].iloc[0] == pd.Timestamp(start, unit="ms", tz="UTC")


def test_running_run_has_no_end_time(yard: Yard) -> None:
    with yard.start_run("live") as run:
        frame = yard.search_runs("live")
        assert frame["status"].tolist() == ["running"]
        assert pd.isna(frame["end_time"].iloc[0])
    assert ids(frame) == [run.run_id]


def test_empty_result_has_the_base_columns(yard: Yard, runs: Runs) -> None:
    frame = yard.search_runs("search", filter="metrics.r2 > 100")
    assert frame.empty
    assert list(frame.columns) == BASE_COLUMNS
    assert isinstance(frame["start_time"].dtype, pd.DatetimeTZDtype)
    assert frame["run_id"].dtype == object
    yard.create_experiment("empty")
    assert list(yard.search_runs("empty").columns) == BASE_COLUMNS


# --- best_run and compare_runs --------------------------------------------------------------


def test_best_run(yard: Yard, runs: Runs) -> None:
    assert yard.best_run("search", "r2").info.run_id == runs.b
    assert yard.best_run("search", "r2", mode="min").info.run_id == runs.a
    assert yard.best_run("search", "rmse", mode="min").info.run_id == runs.c
    assert yard.best_run("search", "r2", filter="params.depth = '3'").info.run_id == runs.a
    best = yard.best_run("other", "r2")
    assert best.info.run_id == runs.d and best.metrics["r2"].value == 0.95
    with yard.start_run("other", name="extreme") as run:
        run.log_metric("r2", -1.7e308)  # finite, so it counts
    assert yard.best_run("other", "r2", mode="min").info.run_id == run.run_id


def test_best_run_none_and_bad_input(yard: Yard, runs: Runs) -> None:
    with pytest.raises(NotFoundError, match="accuracy"):
        yard.best_run("search", "accuracy")
    with pytest.raises(NotFoundError, match="depth"):
        yard.best_run("search", "r2", filter="params.depth = '99'")
    with pytest.raises(InvalidInputError, match="mode"):
        yard.best_run("search", "r2", mode="best")
    with pytest.raises(NotFoundError):
        yard.best_run("nope", "r2")


def test_compare_runs_shows_only_differing_params(yard: Yard, runs: Runs) -> None:
    cmp = yard.compare_runs([runs.a, runs.b])
    assert [r.info.run_id for r in cmp.runs] == [runs.a, runs.b]
    assert list(cmp.params.index) == ["depth"]  # lr is the same in both
    assert cmp.params.iloc[0].tolist() == ["3", "5"]
    assert list(cmp.metrics.index) == ["r2", "rmse"]
    assert cmp.metrics.iloc[:, 0].tolist() == [0.8, 3.0]
    assert cmp.metrics.iloc[:, 1].tolist() == [0.9, 2.5]
    assert all(runs.a[:8] in str(c) for c in cmp.params.columns[:1])

    three = yard.compare_runs([runs.a, runs.b, runs.c])
    assert list(three.params.index) == ["depth", "lr"]
    assert pd.isna(three.metrics.loc["r2"].iloc[2])


def test_compare_runs_needs_two_known_runs(yard: Yard, runs: Runs) -> None:
    with pytest.raises(InvalidInputError, match="two"):
        yard.compare_runs([runs.a])
    with pytest.raises(NotFoundError):
        yard.compare_runs([runs.a, "0" * 32])


# --- property: the store filters and sorts like Python does --------------------------------

_names = itertools.count()


@pytest.fixture(scope="module")
def prop_yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    root: Path = tmp_path_factory.mktemp("prop")
    y = modelyard.connect(f"sqlite:///{root / 'm.db'}", artifact_uri=f"file://{root / 'a'}",
                          capture_git=False, capture_packages=False)
    yield y
    y.close()


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=30, deadline=None, database=None)
@given(
    histories=st.lists(st.lists(finite, max_size=3), min_size=0, max_size=6),
    threshold=finite,
    op=st.sampled_from([">", ">=", "<", "<=", "=", "!="]),
    descending=st.booleans(),
)
def test_search_matches_a_brute_force_filter_and_sort(
    prop_yard: Yard, histories: list[list[float]], threshold: float, op: str,
    descending: bool,
) -> None:
    experiment = f"prop-{next(_names)}"
    prop_yard.create_experiment(experiment)
    latest: dict[str, float | None] = {}
    start: dict[str, int] = {}
    for values in histories:
        with prop_yard.start_run(experiment) as run:
            for v in values:
                run.log_metric("m", v)
        latest[run.run_id] = values[-1] if values else None
        start[run.run_id] = run.info.start_time

    compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__,
               "<=": float.__le__, "=": float.__eq__, "!=": float.__ne__}[op]
    records = prop_yard.tracking.find_runs(
        experiment, filter=f"metrics.m {op} {threshold!r}",
        order_by=[f"metrics.m {'desc' if descending else 'asc'}"],
    )
    expected = [rid for rid, v in latest.items() if v is not None and compare(v, threshold)]
    expected.sort(key=lambda rid: (-start[rid], rid))  # the store's tie-break
    expected.sort(key=lambda rid: latest[rid] or 0.0, reverse=descending)
    assert [r.info.run_id for r in records] == expected
    assert [r.metrics["m"].value for r in records] == [latest[rid] for rid in expected]


@settings(max_examples=30, deadline=None, database=None)
@given(
    runs=st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 3)),   # metric m, often tied
                            st.one_of(st.none(), st.sampled_from("ab")),  # param p
                            st.integers(0, 2)),                          # metric f (filter)
                  min_size=0, max_size=8),
    limit=st.integers(1, 9),
    order=st.sampled_from([["metrics.m desc"], ["metrics.m"], ["params.p desc", "metrics.m"],
                           ["metrics.m desc", "params.p"], ["tags.t"], ["name"]]),
    with_filter=st.booleans(),
)
def test_a_limited_search_is_the_head_of_the_full_one(
    prop_yard: Yard, runs: list[tuple[int | None, str | None, int]], limit: int,
    order: list[str], with_filter: bool,
) -> None:
    """The store plans a top-N search differently (walking the first key's index); it must
    return exactly the first N of the full ordering, runs lacking the key included."""
    experiment = f"limit-{next(_names)}"
    prop_yard.create_experiment(experiment)
    for m, p, f in runs:
        with prop_yard.start_run(experiment) as run:
            if m is not None:
                run.log_metric("m", float(m))
                run.set_tag("t", str(m))
            if p is not None:
                run.log_param("p", p)
            run.log_metric("f", float(f))
    flt = "metrics.f >= 1" if with_filter else None
    full = prop_yard.tracking.find_runs(experiment, filter=flt, order_by=order)
    head = prop_yard.tracking.find_runs(experiment, filter=flt, order_by=order, limit=limit)
    assert [r.info.run_id for r in head] == [r.info.run_id for r in full][:limit]
    # a page further down is the same slice of the full ordering, counted whole
    page, total = prop_yard.tracking.page_runs(experiment, flt, order, offset=limit // 2,
                                               limit=limit)
    assert [r.info.run_id for r in page] == [
        r.info.run_id for r in full][limit // 2:limit // 2 + limit]
    assert total == len(full)
