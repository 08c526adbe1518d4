"""Real traffic through a two-worker ``junction serve``: Prometheus ``/metrics`` sums every
worker's samples, ``Server-Timing`` is on every inference answer, and the usage ledger holds one
row per call once the server stopped (SIGTERM flushes the writer)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table

pytestmark = pytest.mark.slow

MINI_COST = (11 * 0.15 + 7 * 0.60) / 1_000_000  # the fake's default usage at gpt-4o-mini's price
JSON_CALLS, STREAM_CALLS = 12, 3


@pytest.fixture(scope="module")
def served(fake_openai_server, tmp_path_factory) -> Iterator[tuple[JunctionProcess, dict[str, object]]]:
    directory: Path = tmp_path_factory.mktemp("observability")
    config = openai_provider_table(fake_openai_server) + ('\n[metrics]\nflush_seconds = 0.2\n'
                                                          '[middleware.metrics]\nprometheus_flush_seconds = 0.1\n')
    server = JunctionProcess(directory, config, workers=2).start()
    seen: dict[str, object] = {}
    try:
        headers = {"authorization": f"Bearer {server.key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=20) as client:
            body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(JSON_CALLS):
                # A new connection each time, so both workers answer some.
                answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=20)
                assert answer.status_code == 200
                seen["json_timing"] = answer.headers.get("server-timing")
            for _ in range(STREAM_CALLS):
                with httpx.stream("POST", f"{server.url}/v1/chat/completions", headers=headers, timeout=20,
                                  json={**body, "stream": True, "stream_options": {"include_usage": True}}) as answer:
                    assert answer.status_code == 200
                    seen["stream_timing"] = answer.headers.get("server-timing")
                    answer.read()
            fake_openai_server.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
            failed = client.post("/v1/chat/completions", json=body)
            assert failed.status_code == 502
            seen["error_timing"] = failed.headers.get("server-timing")
            # Each worker writes its samples to the shared files every 0.1 s: wait for that once.
            deadline = time.monotonic() + 10
            while (_value(_samples(client.get("/metrics").text), "junction_requests_total") < JSON_CALLS + STREAM_CALLS + 1
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            seen["metrics"] = [client.get("/metrics").text for _ in range(4)]
            seen["metrics_type"] = client.get("/metrics").headers["content-type"]
    finally:
        server.stop()  # SIGTERM: the writer flushes before the workers exit
    seen["log"] = server.output()
    yield server, seen


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples, name: str, **labels: str) -> float:
    return sum(value for (sample, got), value in samples.items()
               if sample == name and all(dict(got).get(key) == want for key, want in labels.items()))


def test_metrics_are_served_as_the_prometheus_text_format(served):
    _, seen = served
    # One charset: Litestar added a second one, and Go's MIME parser (Prometheus 3's scraper)
    # refuses a parameter given twice.
    assert seen["metrics_type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_metrics_sum_both_workers(served):
    _, seen = served
    scrapes = seen["metrics"]
    # Whichever worker answers the scrape, it reports every worker's calls.
    for text in scrapes:
        samples = _samples(text)
        assert _value(samples, "junction_requests_total", endpoint="chat.completions",
                      status_class="2xx") == JSON_CALLS + STREAM_CALLS
        assert _value(samples, "junction_requests_total", status_class="5xx") == 1
        assert _value(samples, "gen_ai_client_token_usage_count", gen_ai_token_type="input",
                      gen_ai_provider_name="openai", gen_ai_request_model="gpt-4o-mini") == JSON_CALLS + STREAM_CALLS
        assert _value(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == \
            7 * (JSON_CALLS + STREAM_CALLS)
        assert _value(samples, "gen_ai_server_request_duration_seconds_count",
                      gen_ai_operation_name="chat") == JSON_CALLS + STREAM_CALLS + 1
        assert _value(samples, "gen_ai_server_time_to_first_token_seconds_count") == STREAM_CALLS
        assert _value(samples, "junction_cost_usd_total", gen_ai_request_model="gpt-4o-mini") == \
            pytest.approx(MINI_COST * (JSON_CALLS + STREAM_CALLS))
        assert _value(samples, "junction_upstream_request_duration_seconds_count", outcome="ok") == \
            JSON_CALLS + STREAM_CALLS
        assert _value(samples, "junction_usage_events_dropped_total") == 0
    labels = {name for (_, got) in _samples(scrapes[0]) for name, _ in got}
    assert not labels & {"org_id", "key_id", "user_id", "org", "key", "user"}  # bounded labels only


def test_server_timing_on_every_inference_answer(served):
    _, seen = served
    for name in ("json_timing", "stream_timing", "error_timing"):
        value = seen[name]
        assert value is not None, name
        parts = dict(part.strip().split(";dur=") for part in value.split(","))
        assert set(parts) == {"gateway", "upstream"}
        assert float(parts["gateway"]) >= 0 and float(parts["upstream"]) > 0


def test_ledger_has_every_call_after_sigterm(served):
    server, seen = served
    database = sqlite3.connect(server.directory / "junction-metrics.db")
    rows = database.execute("SELECT status, provider, model, input_tokens, output_tokens, cost_usd, price_input, "
                            "price_output, stream, principal_kind, attempts FROM usage_events").fetchall()
    assert len(rows) == JSON_CALLS + STREAM_CALLS + 1, seen["log"]
    ok = [row for row in rows if row[0] == 200]
    assert len(ok) == JSON_CALLS + STREAM_CALLS
    assert all(row[1:5] == ("openai", "gpt-4o-mini", 11, 7) for row in ok)
    assert all(row[5] == pytest.approx(MINI_COST) and row[6:8] == (0.15, 0.60) for row in ok)
    assert sum(row[8] for row in ok) == STREAM_CALLS
    failed = [row for row in rows if row[0] != 200]
    assert failed[0][0] == 502 and failed[0][5] is None  # no usage: cost unknown, not $0
    rollup = database.execute("SELECT sum(requests), sum(errors), sum(input_tokens) FROM usage_rollup_hour").fetchone()
    assert rollup == (JSON_CALLS + STREAM_CALLS + 1, 1, 11 * (JSON_CALLS + STREAM_CALLS))
