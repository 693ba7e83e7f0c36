-- wrk script for bench/webhooks.py --source scans: the cards' redirects in turn, paced.
--
--   wrk -t1 -cC -s bench/scan_cards.lua URL -- SLUG_FILE PAUSE_MS
--
-- Each connection waits PAUSE_MS before each request, so C connections ask about
-- C * 1000 / (PAUSE_MS + latency) a second, going round the slugs in SLUG_FILE.

local slugs, pause, n = {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    slugs[#slugs + 1] = line
  end
  pause = tonumber(args[2])
end

function request()
  n = n + 1
  return wrk.format("GET", "/c/" .. slugs[(n - 1) % #slugs + 1])
end

function delay()
  return pause
end
