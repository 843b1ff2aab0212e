-- POSTs the requests listed in a file ("PATH<TAB>BODY" per line), each thread taking
-- every n-th line from its own offset, and prints one JSON line of results at the end.
-- A thread keeps only its own lines and splits one when it sends it: wrk runs each
-- thread's init before it starts the next thread, so a long init (an approval run lists
-- tens of thousands of proposals) would let the first thread run ahead, unmeasured.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(args[3])
  lines = {}
  local n = 0
  for line in io.lines(args[1]) do
    if n % step == offset then
      lines[#lines + 1] = line
    end
    n = n + 1
  end
  headers = {["Content-Type"] = "application/json"}
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
  sent = 0
  next_index = offset
  -- "keyed": a new Idempotency-Key on every request, as a careful client sends.
  keyed = args[4] == "keyed"
  math.randomseed(os.time() + offset)
  run = string.format("%d-%d", os.time(), math.random(1000000000))
end

function request()
  local path, body = lines[(sent % #lines) + 1]:match("([^\t]+)\t(.*)")
  if keyed then
    headers["Idempotency-Key"] = string.format("bench-%s-%d", run, next_index)
  end
  sent = sent + 1
  next_index = next_index + step
  return wrk.format("POST", path, headers, body)
end

-- "listed_used": how many of the listed lines the run may have used (the next run
-- starts past them): every thread took every n-th line, so the one that sent most
-- reached n times its count.
function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  local most = 0
  for _, thread in ipairs(threads) do
    most = math.max(most, thread:get("sent") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "errors": %d, "listed_used": %d, "seconds": %.3f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f}\n',
    summary.requests, errors, most * #threads, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
