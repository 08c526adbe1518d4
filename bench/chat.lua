-- wrk script: POST a small chat completion with the bench master key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench")
wrk.body = os.getenv("BENCH_BODY") or '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'
