-- search.lua - wrk script: one FHIR search per request, with a patient id
-- and a name prefix drawn at random (a pool of requests drawn per thread,
-- then one of them at random for every request).
--
-- VERANDA_SEARCH_PATH     the request path, with {id} and {prefix} placeholders,
--                         e.g. /fhir/Observation?patient={id}&category=laboratory
-- VERANDA_SEARCH_IDS      file of patient ids, one a line (needed for {id})
-- VERANDA_SEARCH_PREFIXES file of URL-encoded name prefixes, one a line
--                         (needed for {prefix})
-- Each wrk thread seeds its own generator, so threads draw different ids.
local template = os.getenv("VERANDA_SEARCH_PATH")
assert(template, "set VERANDA_SEARCH_PATH to the request path")

local function lines(var)
	local file = os.getenv(var)
	assert(file, "set " .. var)
	local t = {}
	for l in io.lines(file) do
		if l ~= "" then
			t[#t + 1] = l
		end
	end
	assert(#t > 0, file .. " is empty")
	return t
end

local ids = template:find("{id}", 1, true) and lines("VERANDA_SEARCH_IDS") or nil
local prefixes = template:find("{prefix}", 1, true) and lines("VERANDA_SEARCH_PREFIXES") or nil

local counter = 0
function setup(thread)
	counter = counter + 1
	thread:set("thread_no", counter)
end

-- Requests are formatted once per thread, before the run: building each
-- one in request() (random draw, substitution, wrk.format) cost wrk about
-- 12 µs of CPU a request on these two shared cores, which the server under
-- test then lacked, while nginx is driven without a script at all.
local POOL = 10000
local pool = {}

function init(args)
	math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
	wrk.headers["Accept"] = "application/fhir+json"
	-- gsub with a function replacement: ids and prefixes may hold '%'
	for i = 1, POOL do
		local p = template
		if ids then
			local id = ids[math.random(#ids)]
			p = p:gsub("{id}", function() return id end)
		end
		if prefixes then
			local pre = prefixes[math.random(#prefixes)]
			p = p:gsub("{prefix}", function() return pre end)
		end
		pool[i] = wrk.format("GET", p)
	end
end

function request()
	return pool[math.random(POOL)]
end
