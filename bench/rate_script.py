"""Redis time of the rate-limit admission script (ADMIT) against logs of realistic size.

    python bench/rate_script.py [--log 20000] [--calls 20000] [--reps 5] [--base DIR] [--paused 300000]

Starts a ``redis-server`` of its own (a port from ``JUNCTION_BENCH_PORTS`` when set), fills two
scopes' logs (key and org, as ``bench/traffic.py``'s key has) with ``--log`` entries each, then
sends ``--calls`` admissions and reads Redis's own accounting (``INFO commandstats``: µs per
``EVALSHA``, which a loaded client does not skew). Two cases: nothing ages out during the run,
and about one entry ages out per call (steady load). ``--base DIR`` runs the script of another
checkout too (its ``app/traffic/windows.py``), rounds interleaved; prints medians over ``--reps``.

``--paused N`` also times the first admission after a pause, in Redis (one ``EVALSHA``): both logs
hold ``N`` entries that all aged out (a scope idle for over a minute), or ``N`` aged out beside
100 live ones (a pause shorter than the minute). Everything else on that Redis waits meanwhile.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
#: Fills one log: ``aging`` entries that age out over the next ``span`` ms, the rest recent.
FILL = """
local c = redis.call('TIME'); local now = c[1] * 1000 + math.floor(c[2] / 1000)
local n, aging, tokens, span = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for k = 0, n - 1 do
  local at = now - 50000 + (k - aging) * 49000 / n
  if k < aging then at = now - 60000 + 300 + k * span / aging end
  redis.call('ZADD', KEYS[1], at, 'old' .. k .. ':' .. tokens)
end
redis.call('SET', KEYS[2], n * tonumber(tokens))
redis.call('PEXPIRE', KEYS[1], 600000)
redis.call('PEXPIRE', KEYS[2], 600000)
return 0
"""
#: Fills one log as a pause leaves it: ``aged`` entries older than the window, then ``live`` ones.
PAUSED = """
local c = redis.call('TIME'); local now = c[1] * 1000 + math.floor(c[2] / 1000)
local aged, live, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for k = 0, aged + live - 1 do
  local at = now - 90000 + k * 20000 / aged
  if k >= aged then at = now - 30000 + (k - aged) end
  redis.call('ZADD', KEYS[1], at, 'old' .. k .. ':' .. tokens)
end
redis.call('SET', KEYS[2], (aged + live) * tonumber(tokens))
redis.call('PEXPIRE', KEYS[1], 600000)
redis.call('PEXPIRE', KEYS[2], 600000)
return 0
"""
TOKENS = 1100
LIMIT = 2_000_000_000


def admit_script(checkout: Path) -> str:
    spec = importlib.util.spec_from_file_location(f"windows_{abs(hash(checkout))}", checkout / "app/traffic/windows.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.ADMIT


def run(client: redis.Redis, script: str, log: int, calls: int, aging: bool) -> float:
    """µs of Redis time per admission."""
    client.flushdb()
    keys = ["bench:key:log", "bench:key:tok", "bench:org:log", "bench:org:tok"]
    for index in range(0, 4, 2):
        # Aging entries spread over the time the run is expected to take (~20k calls a second).
        client.eval(FILL, 2, keys[index], keys[index + 1], log, min(calls, log) if aging else 0, TOKENS,
                    calls / 20)
    sha = client.script_load(script)
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    for call in range(calls):
        pipe.evalsha(sha, 4, *keys, 60_000, LIMIT, LIMIT, LIMIT, LIMIT, f"c{call:x}", TOKENS)
        if call % 200 == 199:
            pipe.execute()
    pipe.execute()
    return float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])


def after_pause(client: redis.Redis, script: str, aged: int, live: int) -> float:
    """ms of Redis time of the first admission after a pause (see ``--paused``)."""
    client.flushdb()
    keys = ["bench:key:log", "bench:key:tok", "bench:org:log", "bench:org:tok"]
    for index in range(0, 4, 2):
        client.eval(PAUSED, 2, keys[index], keys[index + 1], aged, live, TOKENS)
    sha = client.script_load(script)
    client.config_resetstat()
    client.evalsha(sha, 4, *keys, 60_000, LIMIT, LIMIT, LIMIT, LIMIT, "after-pause", TOKENS)
    return float(client.info("commandstats")["cmdstat_evalsha"]["usec"]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=int, default=20_000, help="entries per log before the run")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--base", type=Path, help="also measure this checkout's script")
    parser.add_argument("--paused", type=int, default=0, help="also time the first admission after a pause, "
                        "with this many aged-out entries per log")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from run import free_port
    from traffic import wait_for_redis

    scripts = {"new": admit_script(HERE.parent)} | ({"base": admit_script(args.base)} if args.base else {})
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="junction-rate-script-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                               "--dir", workdir], stdout=subprocess.DEVNULL)
    results: dict[tuple[str, bool], list[float]] = {}
    pauses: dict[tuple[str, int], list[float]] = {}
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_for_redis(url)
        client = redis.Redis.from_url(url)
        for rep in range(args.reps):
            for aging in (False, True):
                for name in list(scripts) if rep % 2 == 0 else list(reversed(scripts)):
                    results.setdefault((name, aging), []).append(run(client, scripts[name], args.log, args.calls, aging))
            for live in (0, 100) if args.paused else ():
                for name in list(scripts) if rep % 2 == 0 else list(reversed(scripts)):
                    pauses.setdefault((name, live), []).append(after_pause(client, scripts[name], args.paused, live))
        client.close()
    finally:
        server.terminate()
        server.wait()
    for (name, aging), values in results.items():
        print(f"{name:5} {'~1 entry ages out a call' if aging else 'nothing ages out       '}  "
              f"ADMIT {statistics.median(values):6.2f} µs of Redis time (median)   runs: "
              + " ".join(f"{value:.1f}" for value in values))
    for (name, live), values in pauses.items():
        print(f"{name:5} after a pause: {args.paused} aged out{f' and {live} live' if live else ''} per log  "
              f"ADMIT {statistics.median(values):8.2f} ms of Redis time (median)   runs: "
              + " ".join(f"{value:.2f}" for value in values))


if __name__ == "__main__":
    main()
