"""The tracking store on SQLAlchemy: the same code for SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.base import (
    ArtifactEntry,
    Entity,
    Experiment,
    LatestMetric,
    MetricPoint,
    MetricRange,
    RunInfo,
    RunQuery,
    RunRecord,
    TrackingStore,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    dialect_insert,
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.backends.metadata.sql.run_search import count_matching, find_run_infos
from modelyard.backends.metadata.sql.write_store import complete_write
from modelyard.backends.metadata.writes import Completion
from modelyard.errors import (
    AlreadyExistsError,
    NotFoundError,
    ParamConflictError,
    StorageError,
)

_CHUNK = 5_000
BATCH_OPERATION = "log_metrics"
BATCH_KEY_TTL_MS = 24 * 3600 * 1000  # how long a metric batch's key is kept
PRUNE_EVERY = 1_000  # keyed batches between two prunings of the expired keys


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqlTrackingStore(TrackingStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        self._claims = 0
        if migrate:
            ensure_schema(engine)

    # --- helpers --------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        return dialect_insert(self.engine, table)

    def _read(self) -> Connection:
        return read_connection(self.engine)

    def _require_run(self, conn: Connection, run_id: str) -> RunInfo:
        row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r}", run_id=run_id)
        return RunInfo(**row)

    # --- experiments ----------------------------------------------------------------------

    @translate_errors
    def create_experiment(self, name: str, description: str = "") -> Experiment:
        created = _now_ms()
        try:
            with self.engine.begin() as conn:
                key = conn.execute(
                    t.experiments.insert().values(
                        name=name, description=description, created_at=created
                    )
                ).inserted_primary_key
        except sa.exc.IntegrityError as exc:
            raise AlreadyExistsError(f"experiment {name!r} already exists", name=name) from exc
        if key is None:  # pragma: no cover - both dialects return the key
            raise StorageError(f"the store returned no id for experiment {name!r}")
        return Experiment(int(key[0]), name, description, created)

    @translate_errors
    def get_experiment(self, name_or_id: str | int) -> Experiment:
        col = t.experiments.c
        if isinstance(name_or_id, int):
            cond = col.experiment_id == name_or_id
        else:
            cond = col.name == name_or_id
        with self._read() as conn:
            row = conn.execute(sa.select(t.experiments).where(cond)).mappings().first()
        if row is None:
            raise NotFoundError(f"no experiment named {name_or_id!r}", experiment=name_or_id)
        return Experiment(**row)

    @translate_errors
    def list_experiments(self) -> list[Experiment]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.experiments).order_by(t.experiments.c.experiment_id)
            ).mappings()
            return [Experiment(**r) for r in rows]

    @translate_errors
    def count_runs(self) -> dict[int, int]:
        c = t.runs.c
        with self._read() as conn:
            rows = conn.execute(sa.select(c.experiment_id, sa.func.count()).group_by(
                c.experiment_id))
            return {int(exp): int(n) for exp, n in rows}

    # --- runs -----------------------------------------------------------------------------

    @translate_errors
    def create_run(self, info: RunInfo, tags: Mapping[str, str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.runs.insert().values(**info.__dict__))
            if tags:
                conn.execute(
                    t.tags.insert(),
                    [{"run_id": info.run_id, "key": k, "value": v} for k, v in tags.items()],
                )

    @translate_errors
    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            info = self._require_run(conn, run_id)
            records = self._load_details(conn, [info])
        return records[0]

    @translate_errors
    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        with self.engine.begin() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(status=status, end_time=end_time, heartbeat=end_time)
            )

    @translate_errors
    def mark_killed(self, run_ids: Sequence[str]) -> int:
        c = t.runs.c
        with self.engine.begin() as conn:
            result = conn.execute(
                t.runs.update()
                .where(c.status == "running", c.run_id.in_(list(run_ids)))
                .values(status="killed", end_time=c.heartbeat)
            )
            return int(result.rowcount or 0)

    # --- params, tags, metrics ------------------------------------------------------------

    @translate_errors
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if not params:
            return
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()]
        with self.engine.begin() as conn:
            self._require_run(conn, run_id)
            conn.execute(self._insert(t.params).on_conflict_do_nothing(), rows)
            stored = dict(
                conn.execute(
                    sa.select(t.params.c.key, t.params.c.value).where(
                        t.params.c.run_id == run_id, t.params.c.key.in_(list(params))
                    )
                ).all()
            )
            clashes = {k: (stored[k], v) for k, v in params.items() if stored.get(k) != v}
            if clashes:
                key, (old, new) = next(iter(clashes.items()))
                raise ParamConflictError(
                    f"param {key!r} of run {run_id} is already {old!r}; it cannot become "
                    f"{new!r} (params are immutable; log a metric or a tag for changing values)",
                    run_id=run_id,
                    keys=sorted(clashes),
                )

    @translate_errors
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        stmt = self._insert(t.tags)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.tags.c.run_id, t.tags.c.key], set_={"value": stmt.excluded.value}
        )
        with self.engine.begin() as conn:
            self._require_run(conn, run_id)
            conn.execute(stmt, [{"run_id": run_id, "key": k, "value": v}
                                for k, v in tags.items()])

    @translate_errors
    def log_metrics(self, points: Sequence[MetricPoint], heartbeat: Iterable[str] = (),
                    batch_key: str | None = None) -> None:
        beat = sorted(set(heartbeat))
        if not points and not beat:
            return
        latest: dict[tuple[str, str], MetricPoint] = {}
        for p in points:
            best = latest.get((p.run_id, p.key))
            if best is None or (p.step, p.timestamp) >= (best.step, best.timestamp):
                latest[(p.run_id, p.key)] = p
        with self.engine.begin() as conn:
            if points and batch_key is not None and not self._claim_batch(conn, batch_key):
                points = ()  # logged by an earlier try of this batch: the heartbeat only
            if points:
                conn.execute(
                    t.metrics.insert(),
                    [p._asdict() for p in points],
                )
                stmt = self._insert(t.latest_metrics)
                cur = t.latest_metrics.c
                newer = sa.or_(
                    stmt.excluded.step > cur.step,
                    sa.and_(stmt.excluded.step == cur.step,
                            stmt.excluded.timestamp >= cur.timestamp),
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[cur.run_id, cur.key],
                    set_={"value": stmt.excluded.value, "step": stmt.excluded.step,
                          "timestamp": stmt.excluded.timestamp},
                    where=newer,
                )
                conn.execute(stmt, [p._asdict() for p in latest.values()])
            if beat:
                conn.execute(
                    t.runs.update()
                    .where(t.runs.c.run_id.in_(beat), t.runs.c.status == "running")
                    .values(heartbeat=_now_ms())
                )

    def _claim_batch(self, conn: Connection, batch_key: str) -> bool:
        """Store the batch's key in the transaction of its points; False if it was stored
        before. A concurrent try of the same key waits for the first (the primary key) and
        then inserts nothing."""
        now = _now_ms()
        stmt = self._insert(t.idempotency_keys).values(
            key=batch_key, operation=BATCH_OPERATION, fingerprint="", result="{}",
            created_at=now).on_conflict_do_nothing(index_elements=["key"])
        # RETURNING, not rowcount: a skipped row is reported reliably on every driver
        claimed = conn.execute(stmt.returning(t.idempotency_keys.c.key)).first() is not None
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:  # a retry comes within a minute; keep a day
            k = t.idempotency_keys.c
            conn.execute(t.idempotency_keys.delete().where(
                k.operation == BATCH_OPERATION, k.created_at < now - BATCH_KEY_TTL_MS))
        return claimed

    @translate_errors
    def ping(self) -> None:
        try:
            # read-only: on SQLite this neither takes the write lock nor waits for a writer
            with self._read() as conn:
                conn.exec_driver_sql("SELECT 1").scalar()
        except sa.exc.SQLAlchemyError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StorageError(f"cannot reach the metadata store at {where}: "
                               f"{getattr(exc, 'orig', None) or exc}") from exc

    @translate_errors
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        c = t.metrics.c
        with self._read() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                sa.select(c.run_id, c.key, c.value, c.step, c.timestamp)
                .where(c.run_id == run_id, c.key == key)
                .order_by(c.step, c.timestamp, c.id)
            )
            return [MetricPoint(*r) for r in rows]

    # --- artifacts ------------------------------------------------------------------------

    @translate_errors
    def record_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry],
                         done: Completion | None = None) -> None:
        if not entries and done is None:
            return
        stmt = self._insert(t.artifacts)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.artifacts.c.run_id, t.artifacts.c.path],
            set_={"sha256": stmt.excluded.sha256, "size": stmt.excluded.size},
        )
        with self.engine.begin() as conn:
            self._require_run(conn, run_id)
            if entries:
                conn.execute(stmt, [{"run_id": run_id, **e.__dict__} for e in entries])
            complete_write(conn, done)

    @translate_errors
    def list_artifacts(self, run_id: str) -> list[ArtifactEntry]:
        c = t.artifacts.c
        with self._read() as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                sa.select(c.path, c.sha256, c.size).where(c.run_id == run_id).order_by(c.path)
            )
            return [ArtifactEntry(*r) for r in rows]

    # --- search ---------------------------------------------------------------------------

    @translate_errors
    def search_runs(self, query: RunQuery) -> list[RunRecord]:
        with self._read() as conn:
            return self._load_details(conn, find_run_infos(conn, query))

    @translate_errors
    def count_matching(self, query: RunQuery) -> int:
        with self._read() as conn:
            return count_matching(conn, query)

    @translate_errors
    def metric_ranges(self, run_ids: Sequence[str], keys: Sequence[str]
                      ) -> dict[tuple[str, str], MetricRange]:
        if not run_ids or not keys:
            return {}
        c = t.metrics.c
        found: dict[tuple[str, str], MetricRange] = {}
        with self._read() as conn:
            for start in range(0, len(run_ids), _CHUNK):
                rows = _plain_rows(conn, sa.select(
                    c.run_id, c.key, sa.func.min(c.value), sa.func.max(c.value),
                    sa.func.count()).where(
                    c.run_id.in_(list(run_ids[start:start + _CHUNK])),
                    c.key.in_(list(keys))).group_by(c.run_id, c.key))
                for run_id, key, low, high, count in rows:
                    found[(run_id, key)] = MetricRange(float(low), float(high), int(count))
        return found

    @translate_errors
    def run_keys(self, experiment_ids: Sequence[int] = ()) -> dict[Entity, list[str]]:
        found: dict[Entity, list[str]] = {}
        with self._read() as conn:
            found["metric"] = _distinct_keys(conn, t.latest_metrics, experiment_ids)
            found["param"] = _distinct_keys(conn, t.params, experiment_ids)
            stmt = sa.select(t.tags.c.key).distinct()  # tags have no index on key alone
            if experiment_ids:
                stmt = stmt.where(t.tags.c.run_id.in_(
                    sa.select(t.runs.c.run_id).where(
                        t.runs.c.experiment_id.in_(list(experiment_ids)))))
            found["tag"] = sorted(str(k) for (k,) in _plain_rows(conn, stmt))
        return found

    def _load_details(self, conn: Connection, infos: list[RunInfo]) -> list[RunRecord]:
        params: dict[str, dict[str, str]] = {i.run_id: {} for i in infos}
        tags: dict[str, dict[str, str]] = {i.run_id: {} for i in infos}
        metrics: dict[str, dict[str, LatestMetric]] = {i.run_id: {} for i in infos}
        ids = list(params)
        lm = t.latest_metrics.c
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            for table, target in ((t.params, params), (t.tags, tags)):
                for run_id, key, value in _plain_rows(conn, sa.select(
                        table.c.run_id, table.c.key, table.c.value
                ).where(table.c.run_id.in_(chunk))):
                    target[run_id][key] = value
            for run_id, key, value, step, ts in _plain_rows(conn, sa.select(
                    lm.run_id, lm.key, lm.value, lm.step, lm.timestamp
            ).where(lm.run_id.in_(chunk))):
                metrics[run_id][key] = LatestMetric(value, step, ts)
        return [
            RunRecord(i, params[i.run_id], tags[i.run_id], metrics[i.run_id]) for i in infos
        ]


def _distinct_keys(conn: Connection, table: sa.Table, experiment_ids: Sequence[int]
                   ) -> list[str]:
    """The keys of ``table`` that runs of these experiments (all runs: none given) have,
    in order. A skip scan on the table's index led by ``key``: one index probe per distinct
    key (then one probe of the experiment's runs), instead of reading every row; the runs
    page asks this on every load, over tables of a few rows per run."""
    name = table.name
    sql = (f"WITH RECURSIVE k(key) AS (SELECT MIN(key) FROM {name} UNION ALL "
           f"SELECT (SELECT MIN(key) FROM {name} WHERE key > k.key) FROM k "
           "WHERE k.key IS NOT NULL) SELECT key FROM k WHERE key IS NOT NULL")
    stmt = sa.text(sql)
    if experiment_ids:
        stmt = sa.text(
            sql + f" AND EXISTS (SELECT 1 FROM {name} x JOIN runs r ON r.run_id = x.run_id "
            "WHERE x.key = k.key AND r.experiment_id IN :ids)"
        ).bindparams(sa.bindparam("ids", [int(i) for i in experiment_ids], expanding=True))
    return sorted(str(k) for (k,) in _plain_rows(conn, stmt))


def _plain_rows(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """All rows as the driver's tuples. For columns of plain types (text, integers, floats)
    this skips SQLAlchemy's per-row processing, which costs more than the query itself on
    the tens of thousands of rows a search loads."""
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


__all__ = ["SqlTrackingStore"]
