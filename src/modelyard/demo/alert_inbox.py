"""The demo's alert receiver: ``python -m modelyard.demo.alert_inbox FILE`` appends each
alert it is sent on standard input (``{"alerts": [...]}``) to FILE as one JSON line."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modelyard.demo.alert_inbox FILE", file=sys.stderr)
        return 2
    alerts = json.load(sys.stdin).get("alerts", [])
    with open(argv[0], "a", encoding="utf-8") as fh:
        for alert in alerts:
            fh.write(json.dumps(alert, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
