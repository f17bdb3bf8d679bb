-- wrk script for scripts/bench-http: a fresh Negotiate token on every request.
-- TOKENS: a file of base64 tokens, one per line, each sent once (a second use would be a replay);
-- TARGET: the request path; HOSTHDR: the Host header. Each wrk thread takes every Nth token.
local tokens, n = {}, 0
local target = os.getenv("TARGET") or "/"
local host = os.getenv("HOSTHDR")
local step, i = 1, 0

function setup(thread)
  -- Threads are numbered here so each reads a disjoint share of the file.
  thread:set("tid", setup_count or 0)
  setup_count = (setup_count or 0) + 1
end

function init(args)
  for line in io.lines(os.getenv("TOKENS")) do
    n = n + 1
    tokens[n] = line
  end
  step = tonumber(os.getenv("WRK_THREADS") or "1")
  i = (tid or 0) + 1 - step
end

function request()
  i = i + step
  if i > n then
    -- Out of fresh tokens: send none (the proxy answers 401, counted as non-2xx) rather than
    -- replay one.
    return wrk.format("GET", target, { ["Host"] = host })
  end
  return wrk.format("GET", target, { ["Host"] = host, ["Authorization"] = "Negotiate " .. tokens[i] })
end
