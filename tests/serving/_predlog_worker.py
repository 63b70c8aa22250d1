"""A process that logs predictions through a PredictionLog, for the real-process tests.

``python _predlog_worker.py MODE URI TAG N [SIDE] [BARRIER]``

- ``exit``: log N records one request at a time, then end normally without flushing (the
  interpreter-exit flush must write them);
- ``kill``: log N records, ``flush()``, write ``flushed N`` to SIDE, then keep logging until
  killed;
- ``race``: wait until BARRIER/go exists, log N records in requests of 1-5 rows, then end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from modelyard.backends.metadata.predictions import PredictionRecord
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.serving.predlog import PredictionLog


def record(tag: str, i: int, row: int = 0) -> PredictionRecord:
    return PredictionRecord(f"{tag}-{i}", row, "claims", 1, "primary", 1_000_000 + i, 1.5,
                            {"customer": i % 17}, {"x": i * 0.5, "tag": tag}, {"p": i % 2})


def main() -> None:
    mode, uri, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    plog = PredictionLog(prediction_store_from_uri(uri), flush_interval=0.05 if mode == "kill"
                         else 60.0, max_batch=200)
    if mode == "exit":
        for i in range(n):
            plog.log([record(tag, i)])
        print(json.dumps({"logged": n, "pending": plog.stats().pending}))
        return  # no flush, no close: the interpreter exit writes them
    if mode == "kill":
        for i in range(n):
            plog.log([record(tag, i)])
        assert plog.flush(30.0)
        with open(sys.argv[5], "a") as side:
            side.write(f"flushed {n}\n")
        i = n
        while True:  # keep the writer busy until the parent kills us
            plog.log([record(tag, i, row) for row in range(20)])
            i += 1
            time.sleep(0.001)
    if mode == "race":
        barrier = Path(sys.argv[6])
        (barrier / f"ready-{tag}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.002)
        i = 0
        while i < n:
            size = min(1 + i % 5, n - i)
            plog.log([record(tag, i + k) for k in range(size)])
            i += size
        assert plog.close(60.0)
        print(json.dumps(plog.stats().to_dict()))


if __name__ == "__main__":
    main()
