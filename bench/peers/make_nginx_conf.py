"""Writes the nginx upstream of bench/peers/peers.sh: the fixed chat.completion JSON of the shared
bench at ``/v1/chat/completions`` and, at ``/stream/v1/chat/completions``, a fixed SSE answer of
``--chunks`` content chunks (plus role, finish and usage chunks and ``[DONE]``) in one body, from
``<workdir>/stream.sse`` (written here too).

    python bench/peers/make_nginx_conf.py --port 18180 --workdir /tmp/junction-bench-i17 > nginx.conf
"""

from __future__ import annotations

import argparse
import json

COMPLETION = ('{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
              '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},'
              '"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}')


def sse(chunks: int) -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
               for i in range(chunks)]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": chunks,
                                                    "total_tokens": 12 + chunks}})
    return "".join(f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events) + "data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18180)
    parser.add_argument("--workdir", default="/tmp/junction-bench-i17")
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    w = args.workdir
    with open(f"{w}/stream.sse", "w", encoding="utf-8") as sse_file:
        sse_file.write(sse(args.chunks))
    print(f"""worker_processes 1;
daemon on;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{args.port} reuseport backlog=4096;
    keepalive_requests 1000000;
    location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION}'; }}
    # A static file (nginx refuses long inline bodies); POST to it is a 405 turned into a GET.
    location = /stream/v1/chat/completions {{
      default_type text/event-stream; alias {w}/stream.sse; error_page 405 =200 $uri;
    }}
    location = /v1/models {{
      default_type application/json;
      return 200 '{{"object":"list","data":[{{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"bench"}}]}}';
    }}
    location / {{ return 404; }}
  }}
}}""")


if __name__ == "__main__":
    main()
