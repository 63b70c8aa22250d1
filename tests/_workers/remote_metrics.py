"""A training process logging metrics to a team server, for the restart test.

``python -m _workers.remote_metrics URI STEPS SECONDS`` logs ``loss`` at steps 0..STEPS-1
spread over SECONDS (buffered, flushed every 50 ms), ends the run, and prints
``{"run_id": ...}`` as its last line. A server that is away meanwhile only delays the
flushes: the buffer keeps each failed batch with its key and sends it again.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import modelyard


def main() -> None:
    uri, steps, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    logging.basicConfig(level=logging.ERROR)
    yard = modelyard.connect(uri, capture_git=False, capture_packages=False,
                             flush_interval=0.05)
    with yard.start_run("restart", name="worker") as run:
        for step in range(steps):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            time.sleep(seconds / steps)
    yard.close()
    print(json.dumps({"run_id": run.run_id}))


if __name__ == "__main__":
    main()
