-- wrk script: one request per user id, user-0 .. user-(N-1), split across wrk's threads, then stop.
-- Usage: wrk -t2 -c64 -d600s -s users.lua URL -- <PUT|GET> <N> <internal-secret>
--   PUT: PUT /api/tokens/datadog with a 32-char api_key and a 40-char app_key (distinct per user)
--   GET: GET /api/tokens/datadog/credentials
-- Each thread takes the ids i with i % threads == thread index. Once a thread has sent all its ids, its
-- idle connections send GET /healthz (not counted) until its last answers arrive, then the thread stops,
-- so wrk's duration is the time to do all N requests. done() prints "ops/s" over that duration.

local threads = {}
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  thread:set("nthreads_total", 0) -- filled in below, once all threads exist
  table.insert(threads, thread)
  for _, t in ipairs(threads) do t:set("nthreads_total", nthreads) end
end

function init(args)
  method = args[1] or "PUT"
  total = tonumber(args[2] or "10000")
  secret = args[3] or "bench-secret"
  next_id = tid
  mine = 0
  for i = tid, total - 1, nthreads_total do mine = mine + 1 end
  ok = 0
  bad = 0
  sent = 0
end

function request()
  if sent < mine then
    local i = next_id
    next_id = next_id + nthreads_total
    sent = sent + 1
    local headers = { ["X-User-ID"] = "user-" .. i, ["X-Internal-Secret"] = secret }
    if method == "PUT" then
      headers["Content-Type"] = "application/json"
      local body = string.format('{"api_key":"%032x","app_key":"%040x"}', i, i)
      return wrk.format("PUT", "/api/tokens/datadog", headers, body)
    end
    return wrk.format("GET", "/api/tokens/datadog/credentials", headers)
  end
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  if body ~= nil and string.sub(body, 1, 11) == '{"status":"' then
    -- filler /healthz
  elseif status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then io.stderr:write("status " .. status .. ": " .. tostring(body) .. "\n") end
  end
  if ok + bad >= mine then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local ok_all, bad_all = 0, 0
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok")
    bad_all = bad_all + t:get("bad")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("USERS_OK %d\nUSERS_BAD %d\nUSERS_SECONDS %.3f\nUSERS_RATE %.1f\n",
    ok_all, bad_all, secs, ok_all / secs))
end
