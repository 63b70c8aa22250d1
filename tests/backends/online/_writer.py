"""A process that writes stamped values to an online store, for the concurrent-writer test.

``python _writer.py URI TABLE NAME KEYS ROUNDS SEED BARRIER``: waits until the parent creates
``BARRIER/go``, then writes every key ``ROUNDS`` times in shuffled batches. In round ``r``
key ``i`` gets stamp ``2 r + 1`` from the writer named ``a`` when ``i`` is even (``2 r``
otherwise) and the reverse from writer ``b``, so the highest stamp of each key is known.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from modelyard.backends.online.base import online_store_from_uri, stamp


def expected_stamp(name: str, key: int, rounds: int) -> int:
    wins = (key % 2 == 0) == (name == "a")
    return 2 * (rounds - 1) + (1 if wins else 0)


def value(name: str, key: int, at: int) -> bytes:
    return stamp(at) + json.dumps({"writer": name, "key": key, "at": at}).encode()


def main() -> None:
    uri, table, name, keys, rounds, seed, barrier = sys.argv[1:8]
    store = online_store_from_uri(uri)
    rng = random.Random(int(seed))
    (Path(barrier) / f"ready-{name}").touch()
    while not (Path(barrier) / "go").exists():
        time.sleep(0.005)
    written = 0
    for r in range(int(rounds)):
        order = list(range(int(keys)))
        rng.shuffle(order)
        while order:
            size = rng.randint(1, 300)
            batch, order = order[:size], order[size:]
            rows = []
            for key in batch:
                wins = (key % 2 == 0) == (name == "a")
                rows.append((f"k{key}", value(name, key, 2 * r + (1 if wins else 0))))
            written += store.write(table, rows)
    store.close()
    print(json.dumps({"written": written}))


if __name__ == "__main__":
    main()
