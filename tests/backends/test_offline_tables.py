"""The offline table store on real Delta tables: ingestion, time travel, forgetting, atomicity.

The behaviour tests run on a local folder and on an S3 bucket (SeaweedFS); the ones that need
the local disk (a blocked log entry, back-dated files, a kill as the first file appears) on
the local folder only.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from _workers.procs import worker_env
from deltalake import DeltaTable

from modelyard.backends.offline.delta import DeltaTableStore
from modelyard.backends.offline.tables import (
    COMMIT,
    INGESTED_AT,
    Commit,
    OfflineTableStore,
    offline_store_from_uri,
)
from modelyard.errors import (
    ConfigurationError,
    DataValidationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "offline"


BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
def uri(request: pytest.FixtureRequest, root: Path) -> str:
    """Where the tables lie: a local folder, or a prefix of an S3 bucket of its own."""
    if request.param == "local":
        return f"file://{root}"
    return f"s3://{request.getfixturevalue('s3_bucket')}/offline"


@pytest.fixture
def store(uri: str) -> DeltaTableStore:
    made = offline_store_from_uri(uri)
    assert isinstance(made, DeltaTableStore)
    return made


def delta_table(store: DeltaTableStore, table: str, **kwargs: Any) -> DeltaTable:
    """Delta's own view of a table, opened by its reference (location and options)."""
    ref = store.ref(table)
    return DeltaTable(ref.uri, storage_options=ref.options(), **kwargs)


def stored_files(store: DeltaTableStore, table: str) -> dict[str, bytes]:
    """Every file of the table, by its path in the table's folder, log included."""
    if store.root is not None:
        folder = store.root / table
        return {p.relative_to(folder).as_posix(): p.read_bytes()
                for p in folder.rglob("*") if p.is_file()}
    import obstore

    from modelyard.backends.offline.location import S3Tables

    assert isinstance(store.location, S3Tables)
    s3 = store.location.s3
    prefix = s3.key(table) + "/"
    return {m["path"][len(prefix):]: bytes(obstore.get(s3.store, m["path"]).bytes())
            for chunk in obstore.list(s3.store, prefix) for m in chunk}


def batch(ids: list[str], amounts: list[float] | None = None) -> pa.Table:
    return pa.table({"customer": ids,
                     "amount": amounts if amounts is not None else [float(len(i)) for i in ids]})


def customers(table: pa.Table) -> list[str]:
    return sorted(table["customer"].to_pylist())


# --- ingestion ----------------------------------------------------------------------------


def test_append_adds_the_system_columns_and_records_the_commit(store: DeltaTableStore
                                                               ) -> None:
    assert not store.exists("claims")
    first = store.append("claims", batch(["a", "b", "c"]))
    second = store.append("claims", batch(["d", "e"]))

    assert (first.version, first.rows, first.operation) == (0, 3, "ingest")
    assert (second.version, second.rows, second.operation) == (1, 2, "ingest")
    assert first.commit_id != second.commit_id
    assert first.ingested_at.tzinfo is not None and first.ingested_at <= second.ingested_at
    assert store.exists("claims")

    rows = store.read("claims")
    assert rows.column_names == ["customer", "amount", INGESTED_AT, COMMIT]
    assert rows.schema.field(INGESTED_AT).type == pa.timestamp("us", tz="UTC")
    by_commit: dict[str, set[datetime]] = {}
    for row in rows.to_pylist():
        by_commit.setdefault(row[COMMIT], set()).add(row[INGESTED_AT])
    assert by_commit == {first.commit_id: {first.ingested_at},
                         second.commit_id: {second.ingested_at}}
    assert customers(rows) == ["a", "b", "c", "d", "e"]
    assert store.history("claims") == [first, second]

    # the Delta log itself carries the commit metadata
    log = {e["version"]: e for e in delta_table(store, "claims").history()}
    assert log[1]["modelyard.commit_id"] == second.commit_id
    assert log[1]["modelyard.source"] == "claims"
    assert log[1]["modelyard.rows"] == "2"
    assert datetime.fromisoformat(log[1]["modelyard.ingested_at"]) == second.ingested_at


def test_read_selects_columns_in_the_order_asked(store: OfflineTableStore) -> None:
    store.append("claims", batch(["a", "b"], [1.0, 2.0]))
    got = store.read("claims", columns=["amount", "customer"])
    assert got.column_names == ["amount", "customer"]
    assert sorted(got.to_pylist(), key=lambda r: r["customer"]) == [
        {"amount": 1.0, "customer": "a"}, {"amount": 2.0, "customer": "b"}]
    with pytest.raises(InvalidInputError, match="no column 'nope'"):
        store.read("claims", columns=["nope"])
    reader = store.scan("claims", columns=["customer"])
    assert sum(b.num_rows for b in reader) == 2


def test_later_batches_may_add_or_leave_out_columns(store: OfflineTableStore) -> None:
    store.append("claims", batch(["a"]))
    store.append("claims", pa.table({"customer": ["b"], "amount": [2.0], "region": ["north"]}))
    store.append("claims", pa.table({"customer": ["c"],
                                     "amount": pa.array([3], pa.int32())}))  # int -> double
    rows = {r["customer"]: r for r in store.read("claims").to_pylist()}
    assert rows["a"]["region"] is None and rows["b"]["region"] == "north"
    assert rows["c"]["region"] is None and rows["c"]["amount"] == 3.0


def test_a_batch_that_does_not_fit_the_table_is_refused_whole(store: OfflineTableStore) -> None:
    store.append("claims", batch(["a"]))
    with pytest.raises(DataValidationError, match="column 'amount' is string in this batch"):
        store.append("claims", pa.table({"customer": ["b"], "amount": ["lots"]}))
    assert customers(store.read("claims")) == ["a"]
    assert len(store.history("claims")) == 1


@pytest.mark.parametrize(("data", "message"), [
    (pa.table({"customer": ["a"], "_commit": ["x"]}), "reserved"),
    (pa.table({"customer a": ["a"]}), "not storable"),
    (pa.table({"customer": pa.nulls(1)}), "only nulls"),
])
def test_unstorable_batches_are_refused(store: OfflineTableStore, data: pa.Table,
                                        message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        store.append("claims", data)
    assert not store.exists("claims")


def test_table_names_are_checked(store: OfflineTableStore) -> None:
    for bad in ["../escape", "", ".hidden", "a/b"]:
        with pytest.raises(InvalidInputError, match="offline table name"):
            store.append(bad, batch(["a"]))


def test_an_empty_batch_is_an_empty_commit(store: OfflineTableStore) -> None:
    store.append("claims", batch(["a"]))
    empty = store.append("claims", batch([], []))
    assert empty.rows == 0 and empty.version == 1
    assert customers(store.read("claims")) == ["a"]


def test_unknown_tables_and_uris(store: OfflineTableStore) -> None:
    with pytest.raises(NotFoundError, match="no offline table 'ghost'"):
        store.read("ghost")
    with pytest.raises(NotFoundError):
        store.history("ghost")
    with pytest.raises(NotFoundError):
        store.drop("ghost")
    with pytest.raises(ConfigurationError, match="unsupported offline store URI"):
        offline_store_from_uri("s4://bucket/x")


def test_drop_removes_the_table(store: DeltaTableStore) -> None:
    store.append("claims", batch(["a"]))
    store.append("other", batch(["b"]))
    assert store.tables() == ["claims", "other"]
    store.drop("claims")
    assert not store.exists("claims") and stored_files(store, "claims") == {}
    assert store.tables() == ["other"]
    with pytest.raises(NotFoundError):
        store.read("claims")
    again = store.append("claims", batch(["z"]))
    assert again.version == 0 and customers(store.read("claims")) == ["z"]


def test_commit_round_trips_through_a_dict() -> None:
    commit = Commit("abc", 3, datetime(2024, 5, 1, 12, tzinfo=UTC), 10, "forget")
    assert Commit.from_dict(json.loads(json.dumps(commit.to_dict()))) == commit
    with pytest.raises(InvalidInputError):
        Commit.from_dict({**commit.to_dict(), "operation": "merge"})


# --- time travel --------------------------------------------------------------------------


def test_as_of_a_commit_or_a_time_returns_what_was_known_then(store: OfflineTableStore
                                                              ) -> None:
    before_all = datetime.now(UTC)
    c1 = store.append("claims", batch(["a", "b"]))
    between_1_2 = datetime.now(UTC)
    c2 = store.append("claims", batch(["c"]))
    c3 = store.append("claims", batch(["a", "d"]))

    assert customers(store.read("claims", as_of=c1.commit_id)) == ["a", "b"]
    assert customers(store.read("claims", as_of=c2.commit_id)) == ["a", "b", "c"]
    assert customers(store.read("claims", as_of=c3.commit_id)) == ["a", "a", "b", "c", "d"]
    assert customers(store.read("claims", as_of=between_1_2)) == ["a", "b"]
    assert customers(store.read("claims", as_of=c2.ingested_at)) == ["a", "b", "c"]
    assert customers(store.read("claims", as_of=c2.ingested_at - timedelta(microseconds=1))
                     ) == ["a", "b"]
    empty = store.read("claims", as_of=before_all)
    assert empty.num_rows == 0 and "customer" in empty.column_names

    # another timezone names the same instant
    plus_two = timezone_plus_two(between_1_2)
    assert customers(store.read("claims", as_of=plus_two)) == ["a", "b"]

    # an ingestion that lands after the as_of time does not change what as_of reads
    pinned = store.read("claims", as_of=c2.ingested_at, columns=["customer", COMMIT])
    store.append("claims", batch(["late"]))
    again = store.read("claims", as_of=c2.ingested_at, columns=["customer", COMMIT])
    assert again.sort_by("customer").equals(pinned.sort_by("customer"))
    assert customers(store.read("claims", as_of=c2.commit_id)) == ["a", "b", "c"]


def timezone_plus_two(moment: datetime) -> datetime:
    from datetime import timezone

    return moment.astimezone(timezone(timedelta(hours=2)))


def test_as_of_refuses_naive_times_and_unknown_commits(store: OfflineTableStore) -> None:
    store.append("claims", batch(["a"]))
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        store.read("claims", as_of=datetime.now())
    with pytest.raises(NotFoundError, match="no commit 'nope'"):
        store.read("claims", as_of="nope")


# --- forgetting ---------------------------------------------------------------------------


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts)


def _holding(store: DeltaTableStore, table: str, secret: str) -> list[str]:
    """The stored files of ``table`` that hold ``secret``: in a data file's rows, or
    anywhere in any other file's bytes (the log)."""
    found = []
    for name, data in stored_files(store, table).items():
        if name.endswith(".parquet"):
            if secret in pq.read_table(io.BytesIO(data))["customer"].to_pylist():
                found.append(name)
        elif secret.encode() in data:
            found.append(name)
    return found


def test_forget_removes_the_rows_from_every_version_and_every_file(
        store: DeltaTableStore) -> None:
    secret = "customer-4f7a-secret"
    c1 = store.append("claims", batch(["a", secret, "b"]))
    store.append("claims", batch([secret, "c"]))
    store.append("claims", batch(["d"]))
    assert len(_holding(store, "claims", secret)) == 2

    removed = store.forget("claims", ["customer"], pa.table({"customer": [secret, "nobody"]}))

    assert removed == 2
    assert customers(store.read("claims")) == ["a", "b", "c", "d"]
    assert customers(store.read("claims", as_of=c1.commit_id)) == ["a", "b"]
    assert customers(store.read("claims", as_of=c1.ingested_at)) == ["a", "b"]
    # no data file left in storage holds the rows, and the log never held the values
    assert _holding(store, "claims", secret) == []
    # Delta's own time travel to the first version cannot show them either: its files are gone
    with pytest.raises(pa.ArrowInvalid, match=r"(?i)not found"):
        pa.RecordBatchReader.from_stream(delta_table(store, "claims", version=0).scan()
                                         ).read_all()

    history = store.history("claims")
    assert [c.operation for c in history] == ["ingest", "ingest", "ingest", "forget"]
    assert history[-1].rows == 2
    assert store.forget("claims", ["customer"], pa.table({"customer": [secret]})) == 0


def test_forget_matches_on_every_key_column(store: OfflineTableStore) -> None:
    store.append("claims", pa.table({"region": ["n", "n", "s"], "id": [1, 2, 1],
                                     "amount": [1.0, 2.0, 3.0]}))
    keys = pa.table({"region": ["n"], "id": pa.array([1], pa.int32())})
    assert store.forget("claims", ["region", "id"], keys) == 1
    left = sorted((r["region"], r["id"]) for r in store.read("claims").to_pylist())
    assert left == [("n", 2), ("s", 1)]
    with pytest.raises(InvalidInputError, match="no column 'zone'"):
        store.forget("claims", ["zone"], pa.table({"zone": ["x"]}))
    with pytest.raises(InvalidInputError, match="keys to forget have no column 'id'"):
        store.forget("claims", ["region", "id"], pa.table({"region": ["s"]}))
    with pytest.raises(NotFoundError):
        store.forget("ghost", ["id"], keys)


def test_forget_also_clears_files_left_by_a_writer_that_died(root: Path) -> None:
    store = DeltaTableStore(root)  # S3 cannot back-date a file
    store.append("claims", batch(["a", "b"]))
    leftover = root / "claims" / "part-00000-leftover-c000.snappy.parquet"
    pq.write_table(batch(["b"]), leftover)
    an_hour_and_more_ago = time.time() - 2 * 3600
    os.utime(leftover, (an_hour_and_more_ago, an_hour_and_more_ago))
    assert store.forget("claims", ["customer"], pa.table({"customer": ["b"]})) == 1
    assert not leftover.exists()
    assert customers(store.read("claims")) == ["a"]


# --- atomicity and concurrency ------------------------------------------------------------


def test_a_failure_after_the_data_files_are_written_leaves_the_table_unchanged(
        root: Path) -> None:
    store = DeltaTableStore(root)
    first = store.append("claims", batch(["a"]))
    folder = root / "claims"
    files_before = set(_parquet_files(folder))
    blocker = folder / "_delta_log" / f"{1:020d}.json"
    blocker.mkdir()  # the next commit's log entry cannot be written
    try:
        with pytest.raises(StorageError, match="nothing was written"):
            store.append("claims", batch(["b", "c"]))
        assert set(_parquet_files(folder)) > files_before  # the writing had started
    finally:
        blocker.rmdir()
    assert customers(store.read("claims")) == ["a"]
    assert store.history("claims") == [first]
    assert store.append("claims", batch(["d"])).version == 1


def _start_worker(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "_workers.offline", *args], cwd=cwd,
                            env=worker_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_concurrent_appends_from_several_processes_all_land(uri: str, tmp_path: Path) -> None:
    """On S3, the commits race by conditional put: a lost race is retried, none is lost."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    names = ("w1", "w2", "w3")
    procs = [_start_worker(["append", "--uri", uri, "--table", "claims", "--name", name,
                            "--batches", "6", "--rows", "5", "--barrier", str(barrier)],
                           tmp_path) for name in names]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < len(procs):
            assert all(p.poll() is None for p in procs), procs[0].communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(names), [err for _, err in outputs]
    reported = [Commit.from_dict(c) for out, _ in outputs
                for c in json.loads(out.strip().splitlines()[-1])["commits"]]

    store = offline_store_from_uri(uri)
    history = store.history("claims")
    assert sorted(history, key=lambda c: c.commit_id) == sorted(reported,
                                                                key=lambda c: c.commit_id)
    assert [c.version for c in history] == list(range(18))
    rows = store.read("claims")
    assert rows.num_rows == 3 * 6 * 5
    per_worker = pc.value_counts(rows["worker"]).to_pylist()
    assert sorted((d["values"], d["counts"]) for d in per_worker) == [(n, 30) for n in names]


@pytest.mark.slow
def test_a_process_killed_mid_write_leaves_the_table_unchanged(root: Path,
                                                               tmp_path: Path) -> None:
    store = DeltaTableStore(root)
    seed = store.append("claims", pa.table({"worker": ["seed"], "batch": [0],
                                            "value": [0.5]}))
    marker = tmp_path / "marker"
    proc = _start_worker(["killed-append", "--uri", store.uri, "--table", "claims",
                          "--marker", str(marker)], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    assert marker.read_text() == "writing\n"  # it died while writing, not before

    assert store.history("claims") == [seed]
    assert store.read("claims")["worker"].to_pylist() == ["seed"]
    nxt = store.append("claims", pa.table({"worker": ["after"], "batch": [1], "value": [1.0]}))
    assert nxt.version == 1
    assert sorted(store.read("claims")["worker"].to_pylist()) == ["after", "seed"]


# --- on S3 ----------------------------------------------------------------------------------


@pytest.mark.s3
def test_the_server_refuses_a_second_create_of_one_key(s3_bucket: str) -> None:
    """What Delta commits on S3 rely on (``conditional_put = etag``): of two writers creating
    the same log entry, the second is refused, so no commit overwrites another."""
    import obstore
    from obstore.exceptions import AlreadyExistsError

    from modelyard.backends.offline.location import S3Tables

    store = DeltaTableStore(S3Tables(f"s3://{s3_bucket}/offline"))
    store.append("claims", batch(["a"]))
    assert isinstance(store.location, S3Tables)
    s3 = store.location.s3
    entry = s3.key("claims", "_delta_log", f"{0:020d}.json")
    with pytest.raises(AlreadyExistsError):
        obstore.put(s3.store, entry, b"{}", mode="create")
    assert store.history("claims")[0].rows == 1  # the commit is intact
    assert store.ref("claims").options() is not None
    options = store.ref("claims").options() or {}
    assert options["conditional_put"] == "etag"
    assert "AWS_S3_ALLOW_UNSAFE_RENAME" not in options


@pytest.mark.s3
def test_a_wrong_credential_is_a_clear_error(s3_bucket: str, s3_server: Any) -> None:
    from modelyard.backends.s3 import S3Options

    uri = f"s3://{s3_bucket}/offline"
    offline_store_from_uri(uri).append("claims", batch(["a"]))
    wrong = S3Options(endpoint=s3_server.endpoint, access_key_id=s3_server.access_key,
                      secret_access_key="not-the-secret")
    store = offline_store_from_uri(uri, wrong)
    for attempt in (lambda: store.read("claims"), lambda: store.append("claims", batch(["b"])),
                    lambda: store.history("claims"), store.tables):
        with pytest.raises(StorageError, match=rf"credentials were refused by the S3 store "
                           rf"{uri} \(check AWS_ACCESS_KEY_ID") as info:
            attempt()
        assert "not-the-secret" not in str(info.value)
    nowhere = offline_store_from_uri(f"s3://{s3_bucket}-missing/offline")
    with pytest.raises(StorageError, match="bucket does not exist"):
        nowhere.append("claims", batch(["a"]))
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = offline_store_from_uri(uri, S3Options(endpoint=f"http://127.0.0.1:{port}"))
    with pytest.raises(StorageError, match=rf"server does not answer at the S3 store {uri}"):
        down.read("claims")
    assert customers(offline_store_from_uri(uri).read("claims")) == ["a"]
