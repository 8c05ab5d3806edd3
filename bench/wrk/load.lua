-- wrk script for bench/load.py: rotate over request paths, count non-2xx, write a JSON summary.
--
--   DOCENT_WRK_PATHS=/tmp/paths.txt DOCENT_WRK_RESULT=/tmp/out.json \
--     wrk -t2 -c20 -d30s -H "Authorization: Bearer ..." -s bench/wrk/load.lua http://127.0.0.1:8000
--
-- DOCENT_WRK_PATHS: a file with one request path (already URL-encoded) per line;
-- every thread walks the list from its own offset, so consecutive requests differ.
-- Without it, every request goes to the URL given on the command line.
-- DOCENT_WRK_RESULT: where done() writes the JSON summary (latencies in microseconds).

local paths_file = os.getenv("DOCENT_WRK_PATHS")
local result_file = os.getenv("DOCENT_WRK_RESULT")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  paths = {}
  if paths_file and paths_file ~= "" then
    for line in io.lines(paths_file) do
      if #line > 0 then
        paths[#paths + 1] = line
      end
    end
  end
  -- Spread the threads over the list (a prime stride keeps them apart).
  position = #paths > 0 and ((thread_no - 1) * 7919) % #paths or 0
  responses = 0
  non2xx = 0
  statuses = {}
end

function request()
  if #paths == 0 then
    return wrk.format(nil, nil)
  end
  position = position % #paths + 1
  return wrk.format("GET", paths[position])
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function json_value(v)
  if type(v) == "table" then
    local parts = {}
    for k, item in pairs(v) do
      parts[#parts + 1] = string.format("%q: %s", tostring(k), json_value(item))
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif type(v) == "string" then
    return string.format("%q", v)
  elseif v == nil or v ~= v then
    return "null"
  else
    return tostring(v)
  end
end

function done(summary, latency, requests)
  local total_non2xx, total_responses, all_statuses = 0, 0, {}
  for _, thread in ipairs(threads) do
    total_non2xx = total_non2xx + (thread:get("non2xx") or 0)
    total_responses = total_responses + (thread:get("responses") or 0)
    for code, n in pairs(thread:get("statuses") or {}) do
      all_statuses[code] = (all_statuses[code] or 0) + n
    end
  end
  local percentiles = {}
  for _, p in ipairs({ 50, 75, 90, 95, 99, 99.9 }) do
    percentiles[tostring(p)] = latency:percentile(p)
  end
  local out = {
    duration_us = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    responses = total_responses,
    non2xx = total_non2xx,
    statuses = all_statuses,
    errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      status = summary.errors.status,
      timeout = summary.errors.timeout,
    },
    latency_us = {
      min = latency.min,
      max = latency.max,
      mean = latency.mean,
      stdev = latency.stdev,
      percentiles = percentiles,
    },
    paths = #paths_count_holder > 0 and paths_count_holder[1] or 0,
  }
  local text = json_value(out)
  if result_file and result_file ~= "" then
    local fh = assert(io.open(result_file, "w"))
    fh:write(text)
    fh:close()
  else
    io.write(text .. "\n")
  end
end

-- done() runs in the main Lua state, which never ran init(): count the paths there.
paths_count_holder = {}
if paths_file and paths_file ~= "" then
  local n = 0
  for line in io.lines(paths_file) do
    if #line > 0 then
      n = n + 1
    end
  end
  paths_count_holder[1] = n
end
