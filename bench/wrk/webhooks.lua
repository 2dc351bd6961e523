-- wrk script: POSTs pre-signed customer.deleted webhooks, cycling through a bodies file
-- (one a line: "signature<TAB>customer id<TAB>body"), and prints a JSON summary with p99.9.
--   wrk -t1 -c16 -d10s -s bench/wrk/webhooks.lua http://127.0.0.1:PORT -- BODIES_FILE
local reqs = {}
local n = 0
local i = 0
local threads = 0

-- Runs in the main state: number the threads so each starts at its own offset.
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local path = args[1]
  for line in io.lines(path) do
    local a = line:find("\t", 1, true)
    local b = line:find("\t", a + 1, true)
    local sig = line:sub(1, a - 1)
    local body = line:sub(b + 1)
    n = n + 1
    reqs[n] = wrk.format("POST", "/webhooks/voucherify", {
      ["Content-Type"] = "application/json",
      ["X-Voucherify-Signature"] = sig,
    }, body)
  end
  i = (((tid or 1) - 1) * 7919) % n
end

function request()
  i = (i % n) + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d},"latency_us":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,' ..
    '"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
