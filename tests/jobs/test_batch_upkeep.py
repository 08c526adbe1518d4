"""The jobs sweep: a batch left ``finalizing`` by a worker that died is finished by another, and
batch files in ``[jobs] files_dir`` leave with their records (expired) or without one (orphans)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from junction.testing.server import JunctionProcess
from tests.fakes.openai_upstream import FakeOpenAI
from tests.jobs.conftest import chat_body, jobs_config

LINE = {"custom_id": "one", "method": "POST", "url": "/v1/chat/completions", "body": chat_body()}


@pytest.fixture(scope="module")
def server(fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    directory = tmp_path_factory.mktemp("upkeep")
    config = jobs_config(fake_openai_server, extra=f'files_dir = "{directory / "files"}"\nresult_ttl_seconds = 4\n'
                                                   "sweep_interval_seconds = 0.2\nfinalize_timeout_seconds = 1\n")
    with JunctionProcess(directory / "server", config) as process:
        yield process


def sdk(server: JunctionProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0, timeout=20)


def run_batch(client: openai.OpenAI) -> tuple[str, openai.types.Batch]:
    uploaded = client.files.create(file=("in.jsonl", (json.dumps(LINE) + "\n").encode()), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    return uploaded.id, wait_completed(client, batch.id)


def wait_completed(client: openai.OpenAI, batch_id: str, timeout: float = 20.0) -> openai.types.Batch:
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while not (batch.status == "completed" and batch.output_file_id) and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.output_file_id, batch
    return batch


def test_a_batch_left_finalizing_is_finished_by_the_sweep(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    with sdk(server) as client:
        _, done = run_batch(client)
        # What a worker that died while finalizing leaves: the batch finalizing, no output file,
        # and (here) no change for a long time.
        with sqlite3.connect(server.directory / "junction.db") as database:
            database.execute("UPDATE job_batches SET status = 'finalizing', output_file_id = NULL, finished_at = NULL, "
                             "expires_at = NULL, updated_at = '2000-01-01 00:00:00.000000' WHERE id = ?", (done.id,))
        assert client.batches.retrieve(done.id).status == "finalizing"
        recovered = wait_completed(client, done.id, timeout=10)
        assert recovered.output_file_id != done.output_file_id
        assert json.loads(client.files.content(recovered.output_file_id).content)["custom_id"] == "one"


def test_expired_and_orphaned_files_leave_files_dir(server: JunctionProcess, fake_openai: FakeOpenAI) -> None:
    files = server.directory.parent / "files"
    hour_ago = time.time() - 2 * 3600
    old_orphan, new_orphan, old_partial = files / "file_orphan_old", files / "file_orphan_new", files / ".x.partial"
    with sdk(server) as client:
        input_id, batch = run_batch(client)
        for path in (old_orphan, new_orphan, old_partial):
            path.write_bytes(b"{}\n")
        for path in (old_orphan, old_partial):
            os.utime(path, (hour_ago, hour_ago))
        output = files / batch.output_file_id
        assert output.exists()
        deadline = time.monotonic() + 15  # the output expires 4 s after the batch finished
        while output.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not output.exists(), "the expired output file is still in files_dir"
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(batch.output_file_id)
        # The input file never expires; a young file without a record may be a save in progress.
        assert client.files.retrieve(input_id).id == input_id and (files / input_id).exists()
        assert new_orphan.exists()
        assert not old_orphan.exists() and not old_partial.exists()


def test_sweep_settings_are_checked(tmp_path: Path, fake_openai_server: FakeOpenAI) -> None:
    config = jobs_config(fake_openai_server, extra="finalize_timeout_seconds = 0\n")
    with pytest.raises(RuntimeError, match="jobs.finalize_timeout_seconds: must be > 0"):
        JunctionProcess(tmp_path, config).start()
