-- One wrk script for every scenario; bench/loadgen.py passes the request in the environment:
-- BENCH_METHOD, BENCH_PATH (its "{id}" becomes a random id in 1..BENCH_IDS), BENCH_BODY (JSON),
-- BENCH_AUTHORIZATION (the Authorization header, if any).
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local ids = tonumber(os.getenv("BENCH_IDS") or "1")
local body = os.getenv("BENCH_BODY")
local headers = {}
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization ~= nil and #authorization > 0 then
  headers["Authorization"] = authorization
end
if body ~= nil and #body > 0 then
  headers["Content-Type"] = "application/json"
else
  body = nil
end
local random_id = string.find(path, "{id}", 1, true) ~= nil
local fixed = nil

function init(args)
  math.randomseed(os.time() + os.clock() * 1000000)
end

function request()
  if not random_id then
    fixed = fixed or wrk.format(method, path, headers, body)
    return fixed
  end
  local target = string.gsub(path, "{id}", tostring(math.random(1, ids)))
  return wrk.format(method, target, headers, body)
end
