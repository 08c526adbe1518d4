#!/usr/bin/env bash
# Where a Junction worker's time goes per request, thread by thread, alternating checkouts (A/B):
# CPU µs per request and context switches per request (voluntary: it slept; involuntary: it was
# preempted), from /proc, which a busy shared host disturbs far less than latency. At c=1 on one
# core, latency is mostly this CPU: Granian's I/O thread (tokio-rt-worker), its GIL thread
# (python3), the asyncio loop (the main python3 thread) and pyreqwest's thread take turns.
# Usage: bench/peers/threads_ab.sh ROUNDS label=CHECKOUT[:provider toml line] ...
#   e.g. bench/peers/threads_ab.sh 3 main=/work/main new=$PWD 'aio=/work/main:http_client = "aiohttp"'
# Each CHECKOUT needs a .venv; its granian.toml is used unless $W/granian-<label>.toml exists.
# Env: C (wrk connections, 1), D (seconds, 5), THREADS=1 (per-thread lines), W (work dir),
#      UP_PORT (nginx upstream, 18180), J_PORT (18190). Gateway on CPU 0, wrk and nginx on CPU 1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-/tmp/junction-threads-ab}; mkdir -p "$W"
UP=${UP_PORT:-18180}; JP=${J_PORT:-18190}; D=${D:-5}; C=${C:-1}
KEY=sk-bench-junction-5e1f; HZ=$(getconf CLK_TCK)
rounds=$1; shift
if ! pgrep -F "$W/nginx.pid" >/dev/null 2>&1; then
  python3 "$HERE/make_nginx_conf.py" --port "$UP" --workdir "$W" > "$W/nginx.conf"; taskset -c 1 nginx -c "$W/nginx.conf" -p "$W/"
fi
# per thread: tid name voluntary involuntary cpu_ticks user_ticks system_ticks
snap() { for t in /proc/$1/task/*; do
  echo "$(basename "$t") $(tr -d ' ' < "$t/comm") $(awk '/^voluntary_ctxt/{v=$2} /nonvoluntary/{n=$2} END{print v, n}' "$t/status") $(awk '{print $14+$15, $14, $15}' "$t/stat")"
done | sort; }
for r in $(seq 1 "$rounds"); do for spec in "$@"; do
  label=${spec%%=*}; rest=${spec#*=}; root=${rest%%:*}; extra=""; [[ $rest == *:* ]] && extra=${rest#*:}
  d=$W/$label; mkdir -p "$d"
  printf '[auth]\nmaster_key = "%s"\n\n[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:%s/v1"\n%s\n' \
    $KEY "$UP" "$extra" > "$d/junction.toml"
  if [ -f "$W/granian-$label.toml" ]; then cp "$W/granian-$label.toml" "$d/granian.toml"; else cp "$root/granian.toml" "$d/granian.toml"; fi
  (cd "$d" && exec taskset -c 0 "$root/.venv/bin/junction" serve --config "$d/junction.toml" --port "$JP" --workers 1 > "$d/log" 2>&1) & sp=$!
  for i in $(seq 1 240); do curl -s -o /dev/null "http://127.0.0.1:$JP/healthz" && break; sleep 0.5; done
  sleep 1
  wp=$(ss -ltnp "sport = :$JP" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | head -1)
  export BENCH_KEY=$KEY BENCH_MODEL=openai/gpt-4o-mini BENCH_STREAM=0
  taskset -c 1 wrk -t1 -c"$C" -d1s -s "$HERE/chat.lua" "http://127.0.0.1:$JP/v1/chat/completions" >/dev/null
  snap "$wp" > "$d/t0"
  out=$(taskset -c 1 wrk -t1 -c"$C" -d"${D}s" -s "$HERE/chat.lua" "http://127.0.0.1:$JP/v1/chat/completions" | grep RESULT)
  snap "$wp" > "$d/t1"
  n=$(echo "$out" | grep -o 'requests=[0-9]*' | cut -d= -f2)
  join "$d/t0" "$d/t1" | awk -v n="$n" -v hz="$HZ" -v label="$label" -v r="$r" -v c="$C" -v wrk="${out#RESULT }" -v th="${THREADS:-}" '
    { v += $9 - $3; i += $10 - $4; cpu += $11 - $5
      if (th != "") lines = lines sprintf("   %-16s vol/req=%.2f invol/req=%.2f cpu_us=%.1f (user %.1f, sys %.1f)\n", $2,
        ($9-$3)/n, ($10-$4)/n, ($11-$5)*1e6/hz/n, ($12-$6)*1e6/hz/n, ($13-$7)*1e6/hz/n) }
    END { printf "AB %s r%s c=%s cpu_us_per_req=%.1f ctx_per_req=%.2f (voluntary %.2f) | %s\n%s", label, r, c,
      cpu*1e6/hz/n, (v+i)/n, v/n, wrk, lines }'
  pkill -P $sp 2>/dev/null; kill $sp 2>/dev/null
  for i in $(seq 1 20); do kill -0 $sp 2>/dev/null || break; sleep 0.5; done
  kill -0 $sp 2>/dev/null && { echo "  (serve $sp still up after 10 s: SIGKILL)"; pkill -9 -P $sp; kill -9 $sp; }
  wait $sp 2>/dev/null
  for i in $(seq 1 20); do ss -ltn "sport = :$JP" | grep -q LISTEN || break; sleep 0.5; done
done; done
