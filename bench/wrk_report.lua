-- wrk script for bench/load.py: requests from a file, sent in turn, and a machine-readable
-- summary with p50/p90/p99 latency.
--
-- BENCH_REQUESTS_FILE (environment) names a file with one request per line, four fields
-- separated by tabs: METHOD, PATH, TOKEN (sent as "Authorization: Bearer <token>"; may be
-- empty) and BODY (one line of JSON, sent as application/json; may be empty).
--
-- done() prints one line: BENCH_RESULT {json}; latencies are in microseconds.

local requests_ = {}
local next_index = 1

function init(args)
  local requests_file = os.getenv("BENCH_REQUESTS_FILE")
  assert(requests_file, "BENCH_REQUESTS_FILE is not set")
  -- Every request is formatted once here; request() only hands them out in turn.
  for line in io.lines(requests_file) do
    local method, path, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
    if method then
      local headers = {}
      if token ~= "" then
        headers["Authorization"] = "Bearer " .. token
      end
      if body == "" then
        body = nil
      else
        headers["Content-Type"] = "application/json"
      end
      table.insert(requests_, wrk.format(method, path, headers, body))
    end
  end
  assert(#requests_ > 0, "BENCH_REQUESTS_FILE holds no request")
end

function request()
  local formatted = requests_[next_index]
  next_index = next_index % #requests_ + 1
  return formatted
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%.0f,"p90":%.0f,"p99":%.0f,"mean":%.1f,"max":%.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
