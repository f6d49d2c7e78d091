-- The request every wrk run of the suite sends, and a report it can parse.
--
-- The request comes from the environment, so one script serves every scenario:
--   BENCH_METHOD (default GET), BENCH_BODY (sent as is; wrk adds Content-Length),
--   BENCH_CONTENT_TYPE. Other headers (Connection: close) come from wrk's -H.
-- done() prints two JSON lines after wrk's own text, each with a "kind", so the suite never has
-- to parse wrk's human output (whose units change with magnitude: "1.23ms", "12.5k").

wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and #body > 0 then
  wrk.body = body
end
local content_type = os.getenv("BENCH_CONTENT_TYPE")
if content_type and #content_type > 0 then
  wrk.headers["Content-Type"] = content_type
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"kind":"summary","requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
  io.write(string.format(
    '{"kind":"latency","mean_us":%.1f,"stdev_us":%.1f,"max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
