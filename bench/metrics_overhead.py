"""What the ``metrics`` plugin (usage ledger rows, Prometheus samples, Server-Timing) costs a
request: two gateways of this checkout, one with it on and one with it off, run at once in front
of one fixed upstream; wrk alternates between them round by round (ABBA), as bench/compare.py.

    python bench/metrics_overhead.py [--rounds 6] [--seconds 8] [--workers 1] [--base CHECKOUT] [--ledger URL]
                                     [--settle S] [--relay]

``--base`` adds the same pair from another checkout (e.g. a ``git worktree`` of the commit
before), all four gateways in one run, for before/after numbers of the overhead itself.

The ledger is the embedded SQLite default, or with ``--ledger URL`` a PostgreSQL / TimescaleDB
database (migrated first; its server's CPU is not the gateway's, as in production); both gateways
keep the access log as configured by ``--access-log`` (on by default, as shipped). The headline:
the change of RPS and of CPU µs per request (the steadier one on a busy host) from metrics off to on.
``--settle S`` charges each loaded run the CPU of ``S`` idle seconds after it too: the ledger writes
its batches in the worker's idle time, which otherwise can fall between the measured windows.
``--relay``: the "on" gateway with ``relay = true``, its usage relay on CPU 1 (a node service
works for every worker of a node, as the ledger's database does: it runs with wrk and the upstream,
not on the measured worker's core); ``cpu_us`` counts the relay, ``worker_us`` is the server without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from compare import ab, report, worker_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settle", type=float, default=0.0, help="idle seconds after each loaded run whose CPU "
                        "counts too (the ledger's writes in idle time)")
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument("--on", default="", help="extra [middleware.metrics] lines of the 'on' gateway, "
                                                  "e.g. 'prometheus = false' to measure the ledger alone")
    parser.add_argument("--relay", action="store_true", help="'on' with relay = true, the relay on CPU 1")
    parser.add_argument("--base", type=Path, help="another checkout whose off/on pair runs alongside")
    parser.add_argument("--ledger", help="the usage ledger's database (e.g. postgresql+asyncpg://postgres@127.0.0.1/"
                        "junction_bench_metrics; migrated first) instead of the embedded SQLite file")
    args = parser.parse_args()
    # What both gateways' configs share (the logging, and the ledger's store when given).
    shared = f'[logging]\nformat = "json"\naccess_log = {"true" if args.access_log == "on" else "false"}\n'
    if args.ledger:
        from junction.settings import settings_from_mapping
        from junction.stores.metrics.migrate import migrate_url

        shared += f'[stores]\nmetrics = "{args.ledger}"\n'
        migrate_url(settings_from_mapping({"stores": {"metrics": args.ledger}}))  # as `junction migrate` does
    off = shared + "[middleware.metrics]\nenabled = false\n"
    on = shared + "[middleware.metrics]\n" + args.on.replace(";", "\n") + "\n"
    if args.relay:
        on += "relay = true\n"
    services_cpu = 1 if args.relay else None
    here = Path(__file__).resolve().parent.parent
    if args.base is None:
        report(ab({"off": (here, off), "on": (here, on)}, args.rounds, args.seconds, args.workers, args.settle,
                  services_cpu))
        return
    results = ab({"base-off": (args.base, off), "base-on": (args.base, on), "off": (here, off), "on": (here, on)},
                 args.rounds, args.seconds, args.workers, args.settle, services_cpu)
    print(f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())}")
    for prefix in ("base-", ""):
        name = "base" if prefix else "this checkout"
        medians = {side: {metric: statistics.median(results[prefix + side][metric]) for metric in results[prefix + side]}
                   for side in ("off", "on")}
        rps, cpu = (medians["on"][metric] / medians["off"][metric] - 1 for metric in ("rps_32", "cpu_us"))
        print(f"{name:14} metrics off->on: RPS {medians['off']['rps_32']:8.0f} -> {medians['on']['rps_32']:8.0f} "
              f"({rps:+.1%}); CPU {medians['off']['cpu_us']:6.1f} -> {medians['on']['cpu_us']:6.1f} us/request "
              f"({medians['on']['cpu_us'] - medians['off']['cpu_us']:+.1f} us, {cpu:+.1%}); "
              f"worker alone {statistics.median(worker_us(results[prefix + 'off'])):6.1f} -> "
              f"{statistics.median(worker_us(results[prefix + 'on'])):6.1f} us/request; "
              f"p99 {medians['off']['p99_ms']:.2f} -> {medians['on']['p99_ms']:.2f} ms")
    for metric in ("rps_32", "cpu_us", "p99_ms"):
        print(f"{metric:7} rounds " + "  ".join(f"{side} " + "/".join(f"{value:.1f}" for value in results[side][metric])
                                                for side in results))


if __name__ == "__main__":
    main()
