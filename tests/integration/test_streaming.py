"""Streams are relayed as they arrive, and a client that goes away closes the upstream stream."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx

from junction.testing.upstream import ScriptedError
from tests.fakes.openai_upstream import ScriptedReply

CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "go"}], "stream": True}


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_first_delta_arrives_before_the_upstream_finishes(gateway, fake_openai):
    reply = fake_openai.script(ScriptedReply(text="first second third", hold=asyncio.Event()))
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                      headers={"authorization": f"Bearer {gateway.key}"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        received = []
        for line in lines:
            if '"content":"firs"' in line:
                break
            received.append(line)
        # The upstream is still holding the rest of its answer: nothing was buffered.
        assert fake_openai.streams_completed == 0
        fake_openai.set_event(reply.hold)
        rest = "\n".join(lines)
    assert rest.rstrip().endswith("data: [DONE]")
    # the fake counts its stream once its handler returns, which may be just after we read [DONE]
    assert wait_for(lambda: fake_openai.streams_completed == 1)


def test_client_disconnect_closes_the_upstream_stream(gateway, fake_openai):
    reply = fake_openai.script(ScriptedReply(text="a long answer that never gets read", hold=asyncio.Event()))
    body = httpx.Request("POST", f"{gateway.url}/v1/chat/completions", json=CHAT,
                         headers={"authorization": f"Bearer {gateway.key}"})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in body.headers.items() if k.lower() != "host")
        sock.sendall(head.encode() + b"\r\n" + body.read())
        first = sock.recv(65536)
        assert b"200 OK" in first
        assert wait_for(lambda: len(fake_openai.requests) == 1)
    # The client is gone. Once the upstream has more to send, it finds its connection closed.
    time.sleep(0.3)
    fake_openai.set_event(reply.hold)
    assert wait_for(lambda: fake_openai.disconnects == 1), "upstream stream was not closed"
    assert fake_openai.streams_completed == 0


def test_an_upstream_stream_cut_before_it_finished_ends_in_an_error_not_done(gateway, fake_openai):
    fake_openai.script(ScriptedReply(text="half an ans", truncate=True))
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                      headers={"authorization": f"Bearer {gateway.key}"}) as response:
        assert response.status_code == 200
        data = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"content":"half"' in "".join(data)
    assert "data: [DONE]" not in data, "a cut stream must not look complete"
    assert '"error"' in data[-1] and "before it finished" in data[-1]


def test_an_empty_upstream_stream_is_an_error_before_the_first_byte(gateway, fake_openai):
    fake_openai.errors.append(ScriptedError(200, b""))  # a 200 whose body holds no event at all
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                          headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 502
    assert "before it finished" in response.json()["error"]["message"]


def test_streams_reuse_the_upstream_connection(gateway, fake_openai):
    """Keep-alive holds for streams too: each new connection to a real provider costs a TLS handshake."""
    for _ in range(3):
        fake_openai.script(ScriptedReply(tail_delay=0.05))  # the body's end arrives after [DONE]
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                              headers={"authorization": f"Bearer {gateway.key}"})
        assert response.text.rstrip().endswith("data: [DONE]")
    peers = [request.peer for request in fake_openai.requests]
    assert len(set(peers)) == 1, peers
