-- post.lua - wrk script: POST one FHIR resource per request.
-- The body is read from the file named by VERANDA_BENCH_BODY.
local path = os.getenv("VERANDA_BENCH_BODY")
assert(path, "set VERANDA_BENCH_BODY to the file holding the request body")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Accept"] = "application/fhir+json"
