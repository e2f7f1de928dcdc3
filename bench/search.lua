-- search.lua - wrk script: one FHIR search per request, with a patient id
-- and a name prefix drawn at random for every request.
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

function init(args)
	math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
	wrk.headers["Accept"] = "application/fhir+json"
end

-- gsub with a function replacement: ids and prefixes may hold '%'
function request()
	local p = template
	if ids then
		local id = ids[math.random(#ids)]
		p = p:gsub("{id}", function() return id end)
	end
	if prefixes then
		local pre = prefixes[math.random(#prefixes)]
		p = p:gsub("{prefix}", function() return pre end)
	end
	return wrk.format("GET", p)
end
