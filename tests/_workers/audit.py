"""Audit appenders: ``python -m _workers.audit URI WORKER COUNT BARRIER`` appends COUNT
entries, one transaction each, once the barrier's ``go`` file appears."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from modelyard.backends.metadata.audit import AuditEvent
from modelyard.backends.metadata.sql.audit_store import SqlAuditStore
from modelyard.backends.metadata.sql.engine import make_engine


def main() -> None:
    uri, worker, count, barrier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        Path(sys.argv[4])
    engine = make_engine(uri)
    store = SqlAuditStore(engine, migrate=False)
    (barrier / f"ready-{worker}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.005)
    seqs = []
    for i in range(count):
        entry = store.append([AuditEvent(f"user:w{worker}", "runs:write", "claims",
                                         target=f"run:{worker}-{i}", detail={"i": i})])[0]
        seqs.append(entry.seq)
    engine.dispose()
    print(json.dumps({"seqs": seqs}))


if __name__ == "__main__":
    main()
