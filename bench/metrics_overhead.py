"""What the ``metrics`` plugin (usage ledger rows, Prometheus samples, Server-Timing) costs a
request: two gateways of this checkout, one with it on and one with it off, run at once in front
of one fixed upstream; wrk alternates between them round by round (ABBA), as bench/compare.py.

    python bench/metrics_overhead.py [--rounds 6] [--seconds 8] [--workers 1]

The ledger is the embedded SQLite default; both gateways keep the access log as configured by
``--access-log`` (on by default, as shipped).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compare import ab, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument("--on", default="", help="extra [middleware.metrics] lines of the 'on' gateway, "
                                                  "e.g. 'prometheus = false' to measure the ledger alone")
    args = parser.parse_args()
    logging = f'[logging]\nformat = "json"\naccess_log = {"true" if args.access_log == "on" else "false"}\n'
    here = Path(__file__).resolve().parent.parent
    sides = {"off": (here, logging + "[middleware.metrics]\nenabled = false\n"),
             "on": (here, logging + "[middleware.metrics]\n" + args.on.replace(";", "\n") + "\n")}
    report(ab(sides, args.rounds, args.seconds, args.workers))


if __name__ == "__main__":
    main()
