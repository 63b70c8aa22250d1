"""PredictionLog in one process: fast logging, batching, flush, failures, bounds, stats."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelyard.backends.metadata.predictions import (
    FailureRecord,
    PredictionRecord,
    PredictionStore,
)
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.prediction_store import SqlPredictionStore
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.backends.predictions.parquet import ParquetPredictionStore
from modelyard.errors import InvalidInputError
from modelyard.serving.predlog import PredictionLog


def rec(i: int, *, role: str = "primary", row: int = 0) -> PredictionRecord:
    return PredictionRecord(f"r{i}", row, "claims", 1, role, 1_000 + i, 2.0,  # type: ignore[arg-type]
                            None, {"x": i}, {"p": 0.5})


def failed(i: int, *, status: int = 422) -> FailureRecord:
    return FailureRecord(f"f{i}", "claims", 1, "primary", 1_000 + i, 1.0, status,
                         "InvalidInputError", "predict", "instances[0].age")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PredictionStore]:
    s = prediction_store_from_uri(f"sqlite:///{tmp_path / 'meta.db'}")
    yield s
    s.close()


@pytest.fixture
def logs() -> Iterator[list[PredictionLog]]:
    made: list[PredictionLog] = []
    yield made
    for plog in made:
        plog.close(timeout=5)


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def break_store(store: ParquetPredictionStore) -> None:
    """Make every write fail, as a full or unmounted disk would: the folder where files are
    written first becomes a plain file."""
    shutil.rmtree(store.root / "tmp")
    (store.root / "tmp").write_bytes(b"")


def repair_store(store: ParquetPredictionStore) -> None:
    (store.root / "tmp").unlink()
    (store.root / "tmp").mkdir()


def test_log_returns_at_once_and_flush_writes_everything(
        store: PredictionStore, logs: list[PredictionLog]) -> None:
    plog = PredictionLog(store, flush_interval=30.0)
    logs.append(plog)
    records = [rec(i) for i in range(5_000)]
    started = time.perf_counter()
    for r in records:
        plog.log(r)
    per_call = (time.perf_counter() - started) / len(records)
    assert per_call < 50e-6  # about a microsecond; generous for a busy machine
    assert plog.flush(timeout=30)
    assert store.count("claims") == 5_000
    stats = plog.stats()
    assert (stats.logged, stats.written, stats.pending, stats.dropped) == (5_000, 5_000, 0, 0)
    assert plog.flush(timeout=0)  # nothing left: returns at once


def test_batches_are_written_on_the_interval_or_when_full(
        store: PredictionStore, logs: list[PredictionLog]) -> None:
    full = PredictionLog(store, flush_interval=30.0, max_batch=100)
    logs.append(full)
    full.log([rec(i) for i in range(99)])
    time.sleep(0.3)
    assert store.count("claims") == 0  # below max_batch, long interval: still waiting
    full.log(rec(99))
    wait_until(lambda: store.count("claims") == 100)

    timed = PredictionLog(store, flush_interval=0.05)
    logs.append(timed)
    timed.log([rec(i) for i in range(200, 205)])
    wait_until(lambda: store.count("claims") == 105, timeout=5)


def test_a_failing_store_keeps_the_records_and_catches_up(
        tmp_path: Path, logs: list[PredictionLog], caplog: pytest.LogCaptureFixture) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    plog = PredictionLog(store, flush_interval=0.02, retry_max=0.05)
    logs.append(plog)
    break_store(store)
    with caplog.at_level(logging.WARNING, logger="modelyard.serving"):
        plog.log([rec(i) for i in range(20)])
        assert not plog.flush(timeout=0.5)
        # retried again and again (how many times within a given time depends on the
        # machine's load, so wait for three attempts rather than count them in a window)
        wait_until(lambda: plog.stats().failures >= 3, timeout=30)
        stats = plog.stats()
        assert stats.pending == 20 and stats.written == 0 and stats.failures >= 3
        assert stats.last_error is not None and "prediction store error" in stats.last_error
        failed = [r for r in caplog.records if "write failed" in r.getMessage()]
        assert len(failed) == 1  # one warning per episode, however many retries
        repair_store(store)
        assert plog.flush(timeout=10)
        # the writer says so just after the write that flush() waited for
        wait_until(lambda: any("resumed" in r.getMessage() for r in caplog.records))
    assert store.count("claims") == 20 and plog.stats().written == 20


def test_a_full_queue_drops_the_oldest_and_counts_them(
        tmp_path: Path, logs: list[PredictionLog], caplog: pytest.LogCaptureFixture) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    plog = PredictionLog(store, flush_interval=0.02, retry_max=0.05, max_batch=10,
                         max_pending=100)
    logs.append(plog)
    break_store(store)
    with caplog.at_level(logging.WARNING, logger="modelyard.serving"):
        plog.log([rec(i) for i in range(5)])
        assert not plog.flush(timeout=0.2)  # the writer holds these 5 as its batch
        for i in range(5, 305):
            plog.log(rec(i))
        stats = plog.stats()
        assert stats.dropped == 200 and stats.pending == 105  # the queue's bound, plus the batch
        wait_until(lambda: any("queue is full" in r.getMessage() for r in caplog.records))
        repair_store(store)
        assert plog.flush(timeout=10)
    kept = set(store.read("claims").request_id)
    assert kept == {f"r{i}" for i in [*range(5), *range(205, 305)]}  # the oldest queued went
    assert len([r for r in caplog.records if "queue is full" in r.getMessage()]) == 1
    assert plog.stats().written == 105


def test_malformed_records_are_dropped_without_blocking_the_others(
        store: PredictionStore, logs: list[PredictionLog],
        caplog: pytest.LogCaptureFixture) -> None:
    plog = PredictionLog(store, flush_interval=30.0)
    logs.append(plog)
    with caplog.at_level(logging.WARNING, logger="modelyard.serving"):
        plog.log([rec(1), rec(2, role="backup"), rec(3)])
        plog.log(rec(4, row=-1))
        assert plog.flush(timeout=10)
    assert sorted(store.read("claims").request_id) == ["r1", "r3"]
    stats = plog.stats()
    assert (stats.written, stats.invalid, stats.pending, stats.failures) == (2, 2, 0, 0)
    assert any("malformed" in r.getMessage() and "role" in r.getMessage()
               for r in caplog.records)


def test_log_never_raises(store: PredictionStore, logs: list[PredictionLog]) -> None:
    plog = PredictionLog(store, flush_interval=30.0)
    logs.append(plog)
    plog.log(42)  # type: ignore[arg-type]
    plog.log(None)  # type: ignore[arg-type]
    plog.log(iter([rec(1), rec(2)]))  # any iterable
    assert plog.flush(timeout=10)
    assert store.count("claims") == 2


def test_close_flushes_stops_the_writer_and_refuses_later_records(
        store: PredictionStore) -> None:
    plog = PredictionLog(store, flush_interval=30.0)
    plog.log([rec(i) for i in range(10)])
    thread = plog._thread
    assert plog.close(timeout=10)
    assert store.count("claims") == 10
    assert thread is not None and not thread.is_alive()
    plog.log(rec(99))  # after close: counted, not written
    stats = plog.stats()
    assert (stats.logged, stats.written, stats.dropped, stats.pending) == (11, 10, 1, 0)
    assert store.count("claims") == 10


def test_records_logged_while_closing_do_not_cut_the_wait_short(
        tmp_path: Path) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    plog = PredictionLog(store, flush_interval=0.02, retry_max=0.05, max_batch=5)
    break_store(store)
    plog.log([rec(i) for i in range(10)])
    plog.flush(timeout=0.1)  # the writer holds 5 as its batch, 5 wait, writes keep failing
    with plog._lock:
        plog._closed = True  # as close() does first; then a request thread logs more
    plog.log([rec(i) for i in range(10, 40)])
    assert not plog.flush(timeout=0.2)  # the 10 are still not written
    repair_store(store)
    assert plog.close(timeout=10)
    assert store.count("claims") == 10 and plog.stats().dropped == 30


def test_an_unreachable_database_never_blocks_logging(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    plog = PredictionLog(SqlPredictionStore(engine, migrate=False), flush_interval=0.02,
                         retry_max=0.05)
    try:
        started = time.perf_counter()
        plog.log([rec(i) for i in range(3)])
        assert time.perf_counter() - started < 0.05
        with caplog.at_level(logging.ERROR, logger="modelyard.serving"):
            assert not plog.close(timeout=0.5)
        assert any("3 records" in r.getMessage() and "lost" in r.getMessage()
                   for r in caplog.records)
        assert plog.stats().failures >= 1
    finally:
        engine.dispose()


def test_bad_settings_are_refused(store: PredictionStore) -> None:
    with pytest.raises(InvalidInputError, match="flush_interval"):
        PredictionLog(store, flush_interval=0)
    with pytest.raises(InvalidInputError, match="max_pending"):
        PredictionLog(store, max_pending=0)


def test_a_server_answer_is_logged_one_record_per_answered_row(
        store: PredictionStore) -> None:
    from modelyard.serving.service import Answer, Sink

    answer = Answer("claims", 3, "canary", "req-1", [0.25, None, {"p": 0.5, "label": "x"}],
                    [{"age": 30}, {"age": None}, {"age": 41}],
                    entities=[{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 3}],
                    status=["found", "missing", "found"], errors={1: "entity not found"},
                    seconds=0.0125)
    plog = PredictionLog(store, flush_interval=30.0)
    sink: Sink = plog.log_answer
    sink(answer)
    assert plog.close(timeout=10)
    frame = store.read("claims")
    assert frame[["request_id", "row", "version", "role", "entity.customer_id", "status",
                  "reason"]].to_dict("records") == [
        {"request_id": "req-1", "row": 0, "version": 3, "role": "canary",
         "entity.customer_id": 1, "status": "found", "reason": None},
        {"request_id": "req-1", "row": 1, "version": 3, "role": "canary",
         "entity.customer_id": 2, "status": "missing", "reason": "entity not found"},
        {"request_id": "req-1", "row": 2, "version": 3, "role": "canary",
         "entity.customer_id": 3, "status": "found", "reason": None}]
    assert frame["features.age"].isna().tolist() == [False, True, False]
    assert frame["latency_ms"].tolist() == [12.5, 12.5, 12.5]
    assert frame["output.prediction"].tolist()[0] == 0.25
    assert pd.isna(frame["output.prediction"].tolist()[1])
    assert frame["output.p"].tolist()[2] == 0.5 and frame["output.label"].tolist()[2] == "x"


def test_failures_share_the_writer_with_predictions(
        tmp_path: Path, logs: list[PredictionLog]) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    plog = PredictionLog(store, flush_interval=0.02, retry_max=0.05)
    logs.append(plog)
    break_store(store)
    started = time.perf_counter()
    for i in range(10):
        plog.log(rec(i))
        plog.log_failure(failed(i))
    assert time.perf_counter() - started < 0.05  # never waits for the failing store
    plog.log_failure(failed(99, status=200))  # malformed: dropped, blocks nothing
    assert not plog.flush(timeout=0.3)
    assert plog.stats().pending == 21
    repair_store(store)
    assert plog.flush(timeout=10)
    assert store.count("claims") == 10 and store.count_failures("claims") == 10
    plog.log_failure("not a record")  # type: ignore[arg-type]
    assert plog.flush(timeout=10)
    stats = plog.stats()
    assert (stats.logged, stats.written, stats.invalid, stats.pending) == (22, 20, 2, 0)


def _answer(rid: str, rows: int) -> Any:
    from modelyard.serving.service import Answer

    return Answer("claims", 1, "primary", rid, [float(i) for i in range(rows)],
                  [{"x": i} for i in range(rows)], seconds=0.002)


def test_an_answer_is_queued_whole_and_written_in_batches_of_its_rows(
        store: PredictionStore, logs: list[PredictionLog]) -> None:
    plog = PredictionLog(store, flush_interval=30.0, max_batch=7)
    logs.append(plog)
    started = time.perf_counter()
    plog.log_answer(_answer("big", 25))  # records built later, by the writer
    plog.log(rec(1))
    assert time.perf_counter() - started < 0.05
    assert plog.stats().logged == 26
    assert plog.flush(timeout=30)
    frame = store.read("claims")
    assert sorted(frame[frame.request_id == "big"]["row"]) == list(range(25))
    assert frame.loc[frame.request_id == "big", "features.x"].tolist() == list(range(25))
    assert (plog.stats().written, plog.stats().pending) == (26, 0)


def test_a_full_queue_drops_the_oldest_rows_of_a_queued_answer(
        tmp_path: Path, logs: list[PredictionLog]) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    plog = PredictionLog(store, flush_interval=0.02, retry_max=0.05, max_batch=4,
                         max_pending=10)
    logs.append(plog)
    break_store(store)
    plog.log(rec(0))
    assert not plog.flush(timeout=0.2)  # the writer holds that one as its batch
    plog.log_answer(_answer("a", 8))
    plog.log_answer(_answer("b", 5))  # 13 queued: the 3 oldest rows of "a" go
    stats = plog.stats()
    assert (stats.dropped, stats.pending) == (3, 11)
    repair_store(store)
    assert plog.flush(timeout=10)
    frame = store.read("claims")
    assert sorted(frame[frame.request_id == "a"]["row"]) == [3, 4, 5, 6, 7]
    assert sorted(frame[frame.request_id == "b"]["row"]) == [0, 1, 2, 3, 4]
    assert plog.stats().written == 11
