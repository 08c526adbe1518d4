#!/usr/bin/env bash
# Side-by-side gateway overhead on one machine, one run (a copy of the shared peers.sh with its own
# ports and work directory, a streaming upstream, and Junction variants).
# Upstream: nginx (127.0.0.1:$UP_PORT): fixed JSON at /v1/chat/completions, a fixed 200-chunk SSE
# answer at /stream/v1/chat/completions. Gateways pinned to CPU 0 (two-worker Junction: CPUs 0,1);
# wrk and nginx on CPU 1. Per target: c=1 p50/p99, c=32 RPS; streamed: c=32 chunks/s, c=1 TTFB.
# Two-worker targets: 64 connections (32 per worker) for the loaded rows.
# Usage: bench/peers/peers.sh [direct tensorzero junction junction-lean junction2 ...]
#   junction        defaults (usage ledger on SQLite, Prometheus, access log)
#   junction-lean   [middleware.metrics] enabled=false, [logging] access_log=false
#   junction2       defaults, two Granian workers, pinned to CPUs 0 and 1
#   junction2-lean  lean, two workers
#   …-litestar      any of these with [server] lean_ingress = false (chat through the Litestar route)
#   …-aiohttp       the provider on aiohttp instead of the default (httptools, on the event loop)
#   …-reqwest       the provider on pyreqwest (Rust, its own thread) instead of the default
#   …-gcN           the gc's generation-0 threshold N (default 700), set at interpreter start
#   …-rloop/-uvloop/-asyncio, -rusttask/-pytask, -st/-mt, -bpN   Granian knobs over the checkout's granian.toml
# Env: JUNCTION_ROOT (checkout with .venv; default: this one), JUNCTION_TOML (extra TOML lines, '|'
# for newlines), UP_PORT (18180), J_PORT (18190), D1 (5 s), D32 (10 s), STREAM=0 to skip streaming.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${JUNCTION_ROOT:-$(cd "$HERE/../.." && pwd)}
W=${W:-/tmp/junction-bench-i17}; mkdir -p $W
UP_PORT=${UP_PORT:-18180}; J_PORT=${J_PORT:-18190}
D1=${D1:-5}; D32=${D32:-10}; STREAM=${STREAM:-1}
KEY=sk-bench-junction-5e1f
targets=${*:-direct tensorzero junction junction-lean}
pids=()
cleanup() { for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
if ! pgrep -F $W/nginx.pid >/dev/null 2>&1; then
  python3 "$HERE/make_nginx_conf.py" --port $UP_PORT --workdir $W > $W/nginx.conf
  taskset -c 1 nginx -c $W/nginx.conf -p $W/
fi
CPU_PIDS=""  # the gateway's serving processes: their CPU time per request is robust to a busy host
cpu_ticks() { local sum=0; for p in $CPU_PIDS; do [ -r /proc/$p/stat ] && sum=$((sum + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $sum; }
wait_http() { for i in $(seq 1 90); do curl -s -o /dev/null "$1" && return 0; sleep 1; done; echo "no answer from $1"; return 1; }
run() { # name url key model stream_model
  local name=$1 url=$2
  export BENCH_KEY=$3 BENCH_MODEL=$4 BENCH_STREAM=0
  code=$(curl -s -o $W/probe.json -w '%{http_code}' -XPOST "$url" -H "Authorization: Bearer $3" -H 'content-type: application/json' -d "{\"model\":\"$4\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")
  [ "$code" = 200 ] || { echo "RESULT $name probe failed: HTTP $code $(head -c 200 $W/probe.json)"; return; }
  taskset -c 1 wrk -t1 -c1 -d1s -s "$HERE/chat.lua" "$url" >/dev/null  # warm-up
  local s0=$(cpu_ticks); a=$(taskset -c 1 wrk -t1 -c1 -d${D1}s -s "$HERE/chat.lua" "$url" | grep RESULT); local s1=$(cpu_ticks)
  local c=${CONNS:-32}
  local t0=$(cpu_ticks); b=$(taskset -c 1 wrk -t1 -c$c -d${D32}s -s "$HERE/chat.lua" "$url" | grep RESULT); local t1=$(cpu_ticks)
  local n=$(echo "$b" | grep -o 'requests=[0-9]*' | cut -d= -f2) n1=$(echo "$a" | grep -o 'requests=[0-9]*' | cut -d= -f2)
  local us=$(awk -v d=$((t1 - t0)) -v n=$n -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.1f", n ? d * 1e6 / hz / n : 0}')
  echo "RESULT $name c1: ${a#RESULT } cpu_us_per_req=$(awk -v d=$((s1 - s0)) -v n=$n1 -v hz=$(getconf CLK_TCK) 'BEGIN{printf "%.1f", n ? d * 1e6 / hz / n : 0}') | c$c: ${b#RESULT } cpu_us_per_req=$us"
  # Requests per second of the serving processes' CPU (all workers summed): what N workers give on
  # N free cores; on this 2-core host the second worker shares CPU 1 with wrk and nginx, so their
  # RPS cannot show it.
  echo "SCALE $name requests_per_cpu_second=$(awk -v u=$us 'BEGIN{printf "%.0f", (u > 0 ? 1e6 / u : 0)}') serving_processes=$(echo $CPU_PIDS | wc -w)"
  if [ "$STREAM" = 1 ] && [ -n "${5:-}" ]; then
    export BENCH_MODEL=$5 BENCH_STREAM=1
    s=$(taskset -c 1 wrk -t1 -c$c -d${D32}s -s "$HERE/chat.lua" "$url" | grep RESULT | sed 's/.*rps=\([0-9.]*\).*non2xx=\([0-9]*\).*/\1 \2/')
    t=$(taskset -c 1 python3 "$HERE/../ttfb.py" "$url" --format line --key "$3" --model "$5" | grep TTFB)
    echo "STREAM $name c$c: chunks_per_s=$(awk -v r=${s% *} 'BEGIN{printf "%.0f", r*204}') streams_per_s=${s% *} non2xx=${s#* } | c1: ${t#TTFB }"
  fi
}
memory() { # pids: their RSS and PSS
  echo "$(for p in $1; do ps -o rss= -p $p; done | tr -s ' \n' ' ') KB, PSS: $(for p in $1; do awk '/^Pss:/{printf "%s ", $2}' /proc/$p/smaps_rollup; done)KB"
}
junction() { # name extra_toml workers cpus
  local name=$1 extra=$2 workers=$3 cpus=$4
  for kind in plain stream; do
    base=http://127.0.0.1:$UP_PORT/v1; [ $kind = stream ] && base=http://127.0.0.1:$UP_PORT/stream/v1
    { printf '[auth]\nmaster_key = "%s"\n\n[providers.openai]\napi_key = "sk-upstream"\nbase_url = "%s"\n' $KEY $base
      [[ $name == *-aiohttp* ]] && echo 'http_client = "aiohttp"'
      [[ $name == *-reqwest* ]] && echo 'http_client = "pyreqwest"' 
      echo "${JUNCTION_TOML:-}${extra}" | tr '|' '\n'; } > $W/junction-$kind.toml
  done
  for kind in plain stream; do
    [ $kind = stream ] && [ "$STREAM" != 1 ] && continue
    mkdir -p $W/$name; granian_variant "$name" > $W/$name/granian.toml
    local pypath=""  # -gcN: the gc's first-generation threshold set to N at interpreter start (an experiment)
    if [[ $name =~ -gc([0-9]+) ]]; then
      mkdir -p $W/gc-${BASH_REMATCH[1]}; pypath=$W/gc-${BASH_REMATCH[1]}
      echo "import gc; gc.set_threshold(${BASH_REMATCH[1]}, *gc.get_threshold()[1:])" > $pypath/sitecustomize.py
    fi
    (cd $W/$name && PYTHONPATH=$pypath taskset -c $cpus "$ROOT/.venv/bin/junction" serve --config $W/junction-$kind.toml --port $J_PORT --workers $workers >$W/$name-$kind.log 2>&1) & pids+=($!)
    wait_http http://127.0.0.1:$J_PORT/healthz || { tail -5 $W/$name-$kind.log; return; }
    sleep 2
    local url=http://127.0.0.1:$J_PORT/v1/chat/completions
    # Two workers: 32 connections each, so each batches as one worker does at 32. (Pinning worker i
    # to CPU i measured no better and varied more: the kernel hashes connections to the workers'
    # sockets, and the one on CPU 1 shares it with wrk and nginx.)
    local conns=$((32 * workers))
    if [ $kind = plain ]; then
      jp=$(ss -ltnp "sport = :$J_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' ')
      echo "RSS $name idle: $(memory "$jp") (serving processes $jp)"; CPU_PIDS=$jp
      STREAM=0 CONNS=$conns run $name $url $KEY openai/gpt-4o-mini
      echo "RSS $name after load: $(memory "$jp")"
    else
      STREAM=1 CONNS=$conns BENCH_KEY=$KEY run_stream_only $name $url
    fi
    pkill -P ${pids[-1]} 2>/dev/null; kill ${pids[-1]}; wait ${pids[-1]} 2>/dev/null
    for i in $(seq 1 20); do ss -ltn "sport = :$J_PORT" | grep -q LISTEN || break; sleep 0.5; done
  done
}
granian_variant() { # the checkout's granian.toml, with the knobs a target name asks for (serve reads ./granian.toml first)
  grep -v -E '^(loop|task_impl|runtime_mode|backpressure) *=' "$ROOT/granian.toml" | sed -n '/^\[granian\]/,$p' | grep -v '^\[granian\.' | sed '/^$/q'
  [[ $1 == *-uvloop* ]] && echo 'loop = "uvloop"'; [[ $1 == *-rloop* ]] && echo 'loop = "rloop"'; [[ $1 == *-asyncio* ]] && echo 'loop = "asyncio"'
  [[ $1 == *-rusttask* ]] && echo 'task_impl = "rust"'; [[ $1 == *-pytask* ]] && echo 'task_impl = "asyncio"'
  [[ $1 =~ -st($|-) ]] && echo 'runtime_mode = "st"'; [[ $1 =~ -mt($|-) ]] && echo 'runtime_mode = "mt"'
  [[ $1 =~ -bp([0-9]+) ]] && echo "backpressure = ${BASH_REMATCH[1]}"
  if ! [[ $1 =~ -(uvloop|rloop|asyncio) ]]; then grep -E '^loop *=' "$ROOT/granian.toml"; fi
  if ! [[ $1 =~ -(rusttask|pytask) ]]; then grep -E '^task_impl *=' "$ROOT/granian.toml"; fi
  if ! [[ $1 =~ -(st|mt)($|-) ]]; then grep -E '^runtime_mode *=' "$ROOT/granian.toml"; fi
  if ! [[ $1 =~ -bp[0-9] ]]; then grep -E '^backpressure *=' "$ROOT/granian.toml"; fi
  sed -n '/^\[granian\./,$p' "$ROOT/granian.toml"
  return 0
}
run_stream_only() { # name url
  export BENCH_KEY=$KEY BENCH_MODEL=openai/gpt-4o-mini BENCH_STREAM=1
  taskset -c 1 wrk -t1 -c4 -d1s -s "$HERE/chat.lua" "$2" >/dev/null  # warm-up
  local c=${CONNS:-32}
  s=$(taskset -c 1 wrk -t1 -c$c -d${D32}s -s "$HERE/chat.lua" "$2" | grep RESULT | sed 's/.*rps=\([0-9.]*\).*non2xx=\([0-9]*\).*/\1 \2/')
  t=$(taskset -c 1 python3 "$HERE/../ttfb.py" "$2" --format line --key $KEY | grep TTFB)
  echo "STREAM $1 c$c: chunks_per_s=$(awk -v r=${s% *} 'BEGIN{printf "%.0f", r*204}') streams_per_s=${s% *} non2xx=${s#* } | c1: ${t#TTFB }"
}
LEAN='|[middleware.metrics]|enabled = false|[logging]|access_log = false'
for t in $targets; do case $t in
  direct)
    CPU_PIDS=$(cat $W/nginx.pid; pgrep -P $(cat $W/nginx.pid))
    STREAM=0 run direct http://127.0.0.1:$UP_PORT/v1/chat/completions none gpt-4o-mini
    [ "$STREAM" = 1 ] && { BENCH_KEY=none; export BENCH_KEY BENCH_MODEL=x BENCH_STREAM=1
      s=$(taskset -c 1 wrk -t1 -c32 -d${D32}s -s "$HERE/chat.lua" http://127.0.0.1:$UP_PORT/stream/v1/chat/completions | grep RESULT | sed 's/.*rps=\([0-9.]*\).*/\1/')
      t2=$(taskset -c 1 python3 "$HERE/../ttfb.py" http://127.0.0.1:$UP_PORT/stream/v1/chat/completions --format line | grep TTFB)
      echo "STREAM direct c32: chunks_per_s=$(awk -v r=$s 'BEGIN{printf "%.0f", r*204}') streams_per_s=$s | c1: ${t2#TTFB }"; } ;;
  tensorzero)
    [ -x $W/venv-tz/bin/python ] || { python3 -m venv $W/venv-tz && $W/venv-tz/bin/pip -q install tensorzero==2026.6.0 >$W/tz-install.log 2>&1; }
    sed "s/18180/$UP_PORT/" "$HERE/tz.toml" > $W/tz.toml; rm -f $W/tz.log
    (cd $W && taskset -c 0 $W/venv-tz/bin/python "$HERE/tz_run.py" $W/tz.toml >$W/tz.log 2>&1) & pids+=($!)
    for i in $(seq 1 60); do grep -q BASE $W/tz.log 2>/dev/null && break; sleep 1; done
    base=$(grep BASE $W/tz.log | awk '{print $2}')
    tzp=$(pgrep -P ${pids[-1]} -f tz_run.py | head -1); tzp=${tzp:-$(pgrep -n -f "tz_run.py $W/tz.toml")}
    echo "RSS tensorzero idle: $(ps -o rss= -p $tzp) KB"; CPU_PIDS=$tzp
    run tensorzero "$base/chat/completions" none tensorzero::model_name::gpt-4o-mini tensorzero::model_name::gpt-4o-mini-stream
    echo "RSS tensorzero after load: $(ps -o rss= -p $tzp) KB"; pkill -P ${pids[-1]} 2>/dev/null; kill ${pids[-1]}; sleep 1 ;;
  junction*)
    workers=1; cpus=0; extra=""
    [[ $t == junction2* ]] && { workers=2; cpus=0,1; }
    [[ $t == *-lean* ]] && extra+=$LEAN
    [[ $t == *-litestar* ]] && extra+='|[server]|lean_ingress = false'
    junction $t "$extra" $workers $cpus ;;
  *) echo "unknown target $t" ;;
esac; done
