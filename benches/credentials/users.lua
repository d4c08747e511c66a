-- wrk script: one request per user id, user-0 .. user-(N-1), split across wrk's threads, timed.
-- Usage: wrk -t2 -c64 -d600s -s users.lua URL -- <PUT|GET> <N> <internal-secret> <threads (same as -t)> <done-file>
--   PUT: PUT /api/tokens/datadog with a 32-char api_key and a 40-char app_key (distinct per user)
--   GET: GET /api/tokens/datadog/credentials
-- Thread k takes the ids i with i % threads == k. Once a thread has sent all its ids, its idle connections
-- send GET /healthz (not counted) until its last answers arrive; then the thread stops and appends a line to
-- <done-file>; the last thread to finish sends SIGINT to wrk's main thread, which ends the run early
-- (wrk's own duration would be the whole -d). The time is measured here (CLOCK_MONOTONIC via LuaJIT's ffi):
-- from the first request sent to the last answer received, over all threads.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } users_timespec;
int clock_gettime(int clk, users_timespec *tp);
int getpid(void);
int tgkill(int tgid, int tid, int sig);
]]
local ts = ffi.new("users_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
local nthreads = 0

-- wrk calls setup() then init() for thread 0 before thread 1 exists, so the thread count comes from args.
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
  table.insert(threads, thread)
end

function init(args)
  method = args[1] or "PUT"
  total = tonumber(args[2] or "10000")
  secret = args[3] or "bench-secret"
  nthreads_total = tonumber(args[4] or "1")
  done_file = args[5]
  next_id = tid
  mine = 0
  for i = tid, total - 1, nthreads_total do mine = mine + 1 end
  ok, bad, sent = 0, 0, 0
  t_first, t_last = 0, 0
end

function request()
  if tid == 0 and not verified then
    -- wrk calls thread 0's request() once before the run, to check the request (script_verify_request);
    -- that one is never sent, so it must not consume a user id.
    verified = true
    return wrk.format("GET", "/healthz")
  end
  if sent < mine then
    if sent == 0 then t_first = now() end
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
    return -- filler /healthz
  end
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then io.stderr:write("status " .. status .. ": " .. tostring(body) .. "\n") end
  end
  if ok + bad >= mine and not finished then
    finished = true
    t_last = now()
    wrk.thread:stop()
    if done_file then
      local f = io.open(done_file, "a"); f:write(tid, "\n"); f:close()
      local n = 0
      for _ in io.lines(done_file) do n = n + 1 end
      if n >= nthreads_total then
        local pid = ffi.C.getpid()
        ffi.C.tgkill(pid, pid, 2) -- SIGINT to the main thread: wrk stops waiting for -d and reports
      end
    end
  end
end

function done(summary, latency, requests)
  local ok_all, bad_all, first, last = 0, 0, math.huge, 0
  for _, t in ipairs(threads) do
    ok_all = ok_all + t:get("ok")
    bad_all = bad_all + t:get("bad")
    local f, l = t:get("t_first"), t:get("t_last")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
  end
  local secs = last - first
  if last == 0 then secs = summary.duration / 1e6 end -- never finished: wrk's whole duration
  io.write(string.format("USERS_OK %d\nUSERS_BAD %d\nUSERS_SECONDS %.3f\nUSERS_RATE %.1f\n",
    ok_all, bad_all, secs, ok_all / secs))
end
