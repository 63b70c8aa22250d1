"""The online store contract, run alike on the SQLite file and the real Redis server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.backends.online.base import OnlineStore, online_store_from_uri, stamp
from modelyard.backends.online.redis import RedisOnlineStore
from modelyard.backends.online.sqlite import SqliteOnlineStore
from modelyard.errors import ConfigurationError, InvalidInputError, StorageError

from ._writer import expected_stamp, value

REDIS_URL = os.environ.get("MODELYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")
WRITER = Path(__file__).with_name("_writer.py")


def val(at: int, body: str = "") -> bytes:
    return stamp(at) + body.encode()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    return f"{REDIS_URL}?prefix={request.getfixturevalue('redis_prefix')}"


@pytest.fixture
def store(online_store_uri: str) -> Iterator[OnlineStore]:
    s = online_store_from_uri(online_store_uri)
    try:
        yield s
    finally:
        s.close()


# --- round trips --------------------------------------------------------------------------

def test_round_trip_over_several_tables_in_one_read(store: OnlineStore) -> None:
    assert store.write("stats@v1", [("1", val(5, "a")), ("2", val(5, "b"))]) == 2
    assert store.write("stats@v2", [("1", val(6, "c"))]) == 1
    assert store.write("other@v1", [("x", val(7, "d"))]) == 1
    got = store.read([("stats@v1", ["2", "1", "3"]), ("stats@v2", ["1", "2"]),
                      ("other@v1", ["x"]), ("nothing@v1", ["1"]), ("stats@v1", [])])
    assert got == [[val(5, "b"), val(5, "a"), None], [val(6, "c"), None], [val(7, "d")],
                   [None], []]
    assert store.read([]) == []


def test_the_same_key_twice_in_one_read(store: OnlineStore) -> None:
    store.write("t@v1", [("1", val(1, "x"))])
    assert store.read([("t@v1", ["1", "1", "2", "1"])]) == [
        [val(1, "x"), val(1, "x"), None, val(1, "x")]]


def test_missing_keys_and_tables_read_as_none(store: OnlineStore) -> None:
    assert store.read([("t@v1", ["a", "b"])]) == [[None, None]]
    assert store.count("t@v1") == 0
    assert store.keys("t@v1") == []


def test_many_tables_in_one_read(store: OnlineStore) -> None:
    for i in range(600):
        store.write(f"g{i}@v1", [("k", val(i, str(i)))])
    got = store.read([(f"g{i}@v1", ["k", "missing"]) for i in range(600)])
    assert got == [[val(i, str(i)), None] for i in range(600)]


# --- newer stamp wins ---------------------------------------------------------------------

def test_newer_stamp_wins(store: OnlineStore) -> None:
    assert store.write("t@v1", [("1", val(10, "ten")), ("2", val(10, "ten"))]) == 2
    # older: skipped; equal: rewritten; newer: written; new key: written
    n = store.write("t@v1", [("1", val(9, "nine")), ("2", val(10, "again")),
                             ("3", val(1, "one"))])
    assert n == 2
    assert store.read([("t@v1", ["1", "2", "3"])]) == [
        [val(10, "ten"), val(10, "again"), val(1, "one")]]
    assert store.write("t@v1", [("1", val(11, "eleven"))]) == 1
    assert store.read([("t@v1", ["1"])]) == [[val(11, "eleven")]]


def test_stamps_compare_as_numbers_across_digit_boundaries(store: OnlineStore) -> None:
    store.write("t@v1", [("k", val(0xF, "small"))])
    assert store.write("t@v1", [("k", val(0x10, "bigger"))]) == 1
    assert store.write("t@v1", [("k", val(0xF, "older"))]) == 0
    big = 1_760_000_000_000_000  # microseconds of a recent instant
    store.write("t@v1", [("b", val(big, "now"))])
    assert store.write("t@v1", [("b", val(big - 1, "a microsecond earlier"))]) == 0
    assert store.write("t@v1", [("b", val(big + 1, "a microsecond later"))]) == 1
    assert store.read([("t@v1", ["k", "b"])]) == [
        [val(0x10, "bigger"), val(big + 1, "a microsecond later")]]


def test_a_batch_with_a_key_twice_keeps_the_newer(store: OnlineStore) -> None:
    store.write("t@v1", [("k", val(5, "five")), ("k", val(3, "three")), ("k", val(7, "seven"))])
    assert store.read([("t@v1", ["k"])]) == [[val(7, "seven")]]


def test_stamp_range() -> None:
    assert stamp(0) == b"0" * 16
    assert stamp(255) == b"00000000000000ff"
    with pytest.raises(InvalidInputError):
        stamp(-1)
    with pytest.raises(InvalidInputError):
        stamp(16**16)


# --- delete, keys, count, drop ------------------------------------------------------------

def test_delete_keys_count_drop(store: OnlineStore) -> None:
    store.write("a@v1", [(str(i), val(1)) for i in range(10)])
    store.write("b@v1", [(str(i), val(1)) for i in range(3)])
    assert store.count("a@v1") == 10
    assert sorted(store.keys("a@v1"), key=int) == [str(i) for i in range(10)]
    assert len(store.keys("a@v1", limit=4)) == 4
    assert store.delete("a@v1", ["0", "1", "nope"]) == 2
    assert store.delete("a@v1", []) == 0
    assert store.count("a@v1") == 8
    assert store.read([("a@v1", ["0", "2"])]) == [[None, val(1)]]
    assert store.drop("a@v1") == 8
    assert store.count("a@v1") == 0
    assert store.drop("a@v1") == 0
    assert store.count("b@v1") == 3  # other tables untouched
    # a deleted key can be written again, whatever its old stamp was
    assert store.write("a@v1", [("5", val(0))]) == 1


def test_tables_whose_names_look_like_prefixes_of_others(store: OnlineStore) -> None:
    store.write("g@v1", [("1", val(1))])
    store.write("g@v10", [("1", val(1)), ("2", val(1))])
    assert store.count("g@v1") == 1
    assert store.drop("g@v1") == 1
    assert store.count("g@v10") == 2


# --- big batches --------------------------------------------------------------------------

def test_fifty_thousand_keys(store: OnlineStore) -> None:
    n = 50_000
    rows = [(str(i), val(2, f"v{i}")) for i in range(n)]
    assert store.write("big@v1", rows) == n
    assert store.count("big@v1") == n
    keys = [str(i) for i in range(n)]
    got = store.read([("big@v1", keys), ("small@v1", ["1"]), ("big@v1", ["7", "x"])])
    assert got[0] == [v for _, v in rows]
    assert got[1:] == [[None], [val(2, "v7"), None]]
    older = [(str(i), val(1, "old")) for i in range(0, n, 2)]
    newer = [(str(i), val(3, f"new{i}")) for i in range(1, n, 2)]
    assert store.write("big@v1", older + newer) == len(newer)
    got = store.read([("big@v1", keys)])[0]
    assert got[0] == val(2, "v0") and got[1] == val(3, "new1")
    assert sum(v is not None and v.startswith(stamp(3)) for v in got) == len(newer)
    assert store.delete("big@v1", keys[:40_000]) == 40_000
    assert store.count("big@v1") == 10_000
    assert store.drop("big@v1") == 10_000


# --- keys with odd characters -------------------------------------------------------------

ODD_KEYS = ["a:b", "a:b:c", "*", "a*", "?", "[x]", "\\", "x y", "ünïcødé", "日本",
            '{"id": 1}', '["1","2"]', "", "%", "'; DROP TABLE online_values; --", "\n"]


def test_keys_with_odd_characters(store: OnlineStore) -> None:
    rows = [(k, val(1, f"value {i}")) for i, k in enumerate(ODD_KEYS)]
    assert store.write("odd@v1", rows) == len(rows)
    assert store.write("odd@v1*", [("*", val(1, "other table"))]) == 1
    assert store.read([("odd@v1", ODD_KEYS)]) == [[v for _, v in rows]]
    assert sorted(store.keys("odd@v1")) == sorted(ODD_KEYS)
    assert store.count("odd@v1") == len(ODD_KEYS)
    assert store.delete("odd@v1", ["*"]) == 1
    assert store.read([("odd@v1", ["*", "a*"]), ("odd@v1*", ["*"])]) == [
        [None, val(1, "value 3")], [val(1, "other table")]]
    assert store.drop("odd@v1") == len(ODD_KEYS) - 1
    assert store.count("odd@v1*") == 1


# --- isolation and URIs -------------------------------------------------------------------

@pytest.mark.redis
def test_redis_prefixes_do_not_see_each_other(redis_prefix: str) -> None:
    one = online_store_from_uri(f"{REDIS_URL}?prefix={redis_prefix}")
    two = online_store_from_uri(f"{REDIS_URL}?prefix={redis_prefix}_2")
    try:
        one.write("t@v1", [("1", val(1, "one"))])
        two.write("t@v1", [("1", val(1, "two")), ("2", val(1, "two"))])
        assert one.read([("t@v1", ["1", "2"])]) == [[val(1, "one"), None]]
        assert two.read([("t@v1", ["1", "2"])]) == [[val(1, "two"), val(1, "two")]]
        assert one.count("t@v1") == 1 and sorted(two.keys("t@v1")) == ["1", "2"]
        assert one.drop("t@v1") == 1
        assert two.count("t@v1") == 2
    finally:
        two.drop("t@v1")
        one.close()
        two.close()


def test_sqlite_files_do_not_see_each_other(tmp_path: Path) -> None:
    one = online_store_from_uri(f"sqlite:///{tmp_path / 'one.db'}")
    two = online_store_from_uri(f"sqlite:///{tmp_path / 'two' / 'two.db'}")
    try:
        one.write("t@v1", [("1", val(1, "one"))])
        assert two.read([("t@v1", ["1"])]) == [[None]]
    finally:
        one.close()
        two.close()


def test_store_from_uri(tmp_path: Path) -> None:
    sqlite = online_store_from_uri(f"sqlite:///{tmp_path / 'x' / 'o.db'}")
    assert isinstance(sqlite, SqliteOnlineStore)
    assert sqlite.path == tmp_path / "x" / "o.db" and sqlite.path.exists()
    sqlite.close()
    named = online_store_from_uri("redis://127.0.0.1:6379/0?prefix=claims")
    assert isinstance(named, RedisOnlineStore) and named.prefix == "claims"
    assert named.uri == "redis://127.0.0.1:6379/0?prefix=claims"
    default = online_store_from_uri("redis://127.0.0.1:6379/0", "myproject")
    assert isinstance(default, RedisOnlineStore) and default.prefix == "myproject"
    fallback = online_store_from_uri("redis://127.0.0.1:6379/0", "")
    assert isinstance(fallback, RedisOnlineStore) and fallback.prefix == "modelyard"
    other = online_store_from_uri("redis://127.0.0.1:6379/2?socket_keepalive=true&prefix=p")
    assert isinstance(other, RedisOnlineStore) and other.prefix == "p"
    for s in (named, default, fallback, other):
        s.close()
    for bad in ("postgresql://x/y", "sqlite://relative.db", "memory://", "", "redis:/x"):
        with pytest.raises(ConfigurationError, match="unsupported online store URI"):
            online_store_from_uri(bad)


@pytest.mark.redis
def test_the_default_prefix_is_used_on_the_server(redis_prefix: str) -> None:
    store = online_store_from_uri(REDIS_URL, redis_prefix)
    explicit = online_store_from_uri(f"{REDIS_URL}?prefix={redis_prefix}")
    try:
        store.write("t@v1", [("1", val(1, "x"))])
        assert explicit.read([("t@v1", ["1"])]) == [[val(1, "x")]]
    finally:
        store.close()
        explicit.close()


@pytest.mark.parametrize("uri", [
    "redis://:s3cret-pw@127.0.0.1:1/0?prefix=x",
    "redis://someone:s3cret-pw@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password=s3cret-pw&prefix=x",
])
def test_unreachable_redis_is_a_storage_error_without_the_password(uri: str) -> None:
    store = online_store_from_uri(uri)
    try:
        assert "s3cret" not in store.uri
        calls = [store.ping, lambda: store.read([("t@v1", ["1"])]),
                 lambda: store.write("t@v1", [("1", val(1))]), lambda: store.count("t@v1"),
                 lambda: store.keys("t@v1"), lambda: store.delete("t@v1", ["1"]),
                 lambda: store.drop("t@v1")]
        for call in calls:
            with pytest.raises(StorageError) as info:
                call()
            error = info.value
            assert error.http_status == 503
            assert "127.0.0.1:1" in str(error)
            assert "s3cret" not in str(error)
            assert "s3cret" not in json.dumps(error.to_dict())
    finally:
        store.close()


def test_sqlite_in_an_unwritable_place_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError):
        online_store_from_uri(f"sqlite:///{blocker / 'online.db'}")


def test_sqlite_store_works_from_several_threads(tmp_path: Path) -> None:
    import threading

    store = online_store_from_uri(f"sqlite:///{tmp_path / 'o.db'}")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                store.write("t@v1", [(f"{n}-{i}", val(i))])
                assert store.read([("t@v1", [f"{n}-{i}"])]) == [[val(i)]]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count("t@v1") == 80
    store.close()
    assert store.count("t@v1") == 80  # reopens after close


# --- concurrent writers -------------------------------------------------------------------

def test_two_processes_writing_the_same_keys(online_store_uri: str, tmp_path: Path) -> None:
    keys, rounds = 1_500, 4
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen(
        [sys.executable, str(WRITER), online_store_uri, "race@v1", name, str(keys), str(rounds),
         str(seed), str(barrier)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed, name in enumerate(["a", "b"])]
    try:
        deadline = time.monotonic() + 60
        while len(list(barrier.glob("ready-*"))) < 2:
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"a writer exited early: {p.communicate()}")
            assert time.monotonic() < deadline, "writers did not start"
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], outputs
    written = sum(json.loads(out.strip().splitlines()[-1])["written"] for out, _ in outputs)
    assert written >= keys  # at least the last value of every key

    store = online_store_from_uri(online_store_uri)
    try:
        got = store.read([("race@v1", [f"k{i}" for i in range(keys)])])[0]
        assert store.count("race@v1") == keys
    finally:
        store.close()
    for i, stored in enumerate(got):
        name = "a" if i % 2 == 0 else "b"
        assert stored == value(name, i, expected_stamp(name, i, rounds)), i
