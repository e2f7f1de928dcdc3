-- auth.lua - wrk script for bench/auth.mjs: form POSTs to a token or sign-in
-- endpoint, counting only the answers that carry what a client needs.
--
-- AUTH_MODE     "once":    every line of AUTH_FILE is a request body sent
--                          exactly once (authorization codes are single-use);
--                          a thread stops when its share is used up
--               "repeat":  the lines of AUTH_FILE are sent over and over
--                          (password sign-ins)
--               "refresh": every line of AUTH_FILE is a refresh token, the
--                          head of one chain; each answer's new refresh token
--                          goes back into the thread's pool and is used for
--                          that chain's next request (rotation: a token is
--                          good once).  A thread stops if its pool runs dry.
-- AUTH_FILE     the file of bodies or tokens, one a line
-- AUTH_PATH     the request path (/oauth/token, /token, /oauth/login)
-- AUTH_THREADS  wrk's -t (the lines are dealt out between the threads)
-- AUTH_EXPECT   the status that counts as success (200 or 303)
-- AUTH_COOKIE   optional Cookie header (the sign-in form's CSRF cookie)
-- AUTH_CLIENT   client_id for refresh requests
--
-- wrk's own Requests/sec divides by the whole -d even when threads stopped
-- early, so done() prints its own count and clock (LuaJIT's ffi, monotonic):
--   auth-bench ok=N bad=N secs=S err=<first unexpected answer>
-- where secs runs from the first request sent to the last success received.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } auth_bench_ts;
int clock_gettime(int clk, auth_bench_ts *ts);
]]
local ts = ffi.new("auth_bench_ts")
local function now()
	ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
	return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local mode = os.getenv("AUTH_MODE") or "once"
local file = assert(os.getenv("AUTH_FILE"), "set AUTH_FILE")
local path = assert(os.getenv("AUTH_PATH"), "set AUTH_PATH")
local nthreads = tonumber(os.getenv("AUTH_THREADS") or "1")
local expect = tonumber(os.getenv("AUTH_EXPECT") or "200")
local cookie = os.getenv("AUTH_COOKIE")
local client = os.getenv("AUTH_CLIENT") or "bench"

local threads = {}
local counter = 0
function setup(thread)
	counter = counter + 1
	thread:set("thread_no", counter)
	table.insert(threads, thread)
end

-- per thread (the running phase)
ok, bad, t_first, t_last, err = 0, 0, 0, 0, ""
local items, next_item, pool = {}, 1, {}
local stopped = false

function init(args)
	local k = 0
	for l in io.lines(file) do
		if l ~= "" then
			-- "repeat": every thread sends every line; otherwise they are dealt out
			if mode == "repeat" or k % nthreads == (thread_no or 1) - 1 then
				items[#items + 1] = l
			end
			k = k + 1
		end
	end
	if mode == "repeat" and #items > 0 then
		-- threads start at different lines (different accounts at the same moment)
		next_item = ((thread_no or 1) - 1) * math.max(1, math.floor(#items / nthreads)) % #items + 1
	end
	if mode == "refresh" then
		for i = 1, #items do
			pool[i] = items[i]
		end
	end
	wrk.method = "POST"
	wrk.path = path
	wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
	wrk.headers["Accept"] = "application/json"
	if cookie and cookie ~= "" then
		wrk.headers["Cookie"] = cookie
	end
end

-- After the thread's share is used up: stop, and hand wrk something
-- harmless to send (it is not counted: the loop ends first).
local function finish()
	if not stopped then
		stopped = true
		wrk.thread:stop()
	end
	return wrk.format("GET", "/.well-known/openid-configuration", {})
end

function request()
	if t_first == 0 then
		t_first = now()
	end
	local body
	if mode == "once" then
		body = items[next_item]
		if not body then
			return finish()
		end
		next_item = next_item + 1
	elseif mode == "repeat" then
		body = items[next_item]
		next_item = next_item % #items + 1
	else
		local tok = table.remove(pool)
		if not tok then
			return finish()
		end
		body = "grant_type=refresh_token&client_id=" .. client .. "&refresh_token=" .. tok
	end
	return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
	if status == expect then
		if mode == "refresh" then
			local tok = body:match('"refresh_token"%s*:%s*"([^"]+)"')
			if not tok then
				bad = bad + 1
				if err == "" then
					err = "no refresh_token in " .. body:sub(1, 200)
				end
				return
			end
			pool[#pool + 1] = tok
		elseif expect == 200 and not body:find('"access_token"', 1, true) then
			bad = bad + 1
			if err == "" then
				err = "no access_token in " .. body:sub(1, 200)
			end
			return
		end
		ok = ok + 1
		t_last = now()
	else
		bad = bad + 1
		if err == "" then
			err = status .. " " .. (body or ""):sub(1, 200):gsub("%s+", " ")
		end
	end
end

function done(summary, latency, requests)
	local n_ok, n_bad, first, last, e = 0, 0, math.huge, 0, ""
	for _, t in ipairs(threads) do
		n_ok = n_ok + t:get("ok")
		n_bad = n_bad + t:get("bad")
		local f, l = t:get("t_first"), t:get("t_last")
		if f > 0 and f < first then
			first = f
		end
		if l > last then
			last = l
		end
		if e == "" then
			e = t:get("err")
		end
	end
	local secs = (n_ok > 0 and last > first) and (last - first) or 0
	io.write(string.format("auth-bench ok=%d bad=%d secs=%.4f err=%s\n", n_ok, n_bad, secs, e))
end
