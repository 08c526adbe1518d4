-- wrk script: every request a chat completion never asked before (a cache miss), stored for 30 s.
local counter = 0
local run = tostring(math.random(1, 1e9)) .. "-" .. tostring(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-bench")
wrk.headers["x-junction-cache-ttl"] = "30"

request = function()
  counter = counter + 1
  local body = '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello ' .. run .. "-" .. counter .. '!"}]}'
  return wrk.format(nil, nil, nil, body)
end
