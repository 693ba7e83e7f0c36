-- wrk script for bench/scanners.py: exactly N counted scans, then other traffic.
--
--   wrk -s bench/count.lua URL -- N COUNTED_PATH LOCATION OTHER_PATH OTHER_LOCATION
--
-- wrk stops in the middle of whatever is in flight, so a plain run cannot tell how many
-- requests the server saw. Here the first N requests go to COUNTED_PATH and every later
-- one to OTHER_PATH; once the run is long enough, all N have been answered, and each
-- answer is checked (302 to LOCATION). The card's scanCount must then grow by exactly the
-- number of those answers. wrk calls request() once to check the script before the run,
-- so N - 1 counted requests go out.
-- Globals, not locals: done() reads them from the thread with thread:get().

sent, seen, others_seen = 0, 0, 0
local limit, location, other_location, counted_request, other_request

function init(args)
  limit, location, other_location = tonumber(args[1]), args[3], args[5]
  -- No headers given: wrk.headers, which holds the -H User-Agent, is used.
  counted_request = wrk.format("GET", args[2])
  other_request = wrk.format("GET", args[4])
end

function request()
  if sent < limit then
    sent = sent + 1
    return counted_request
  end
  return other_request
end

function response(status, headers, body)
  local answer = headers["location"] or headers["Location"]
  if status == 302 and answer == location then
    seen = seen + 1
  elseif status == 302 and answer == other_location then
    others_seen = others_seen + 1
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total_seen, total_others = 0, 0
  for _, thread in ipairs(threads) do
    total_seen = total_seen + thread:get("seen")
    total_others = total_others + thread:get("others_seen")
  end
  io.write(string.format("counted_seen %d\nothers_seen %d\n", total_seen, total_others))
end
