-- wrk script of bench/run.sh tasks: one echo task per POST, and one JSON
-- line at the end (requests answered 2xx, seconds, failures; latency in ms).
wrk.method = "POST"
wrk.body = '{"handler": "echo"}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"tasks": %d, "seconds": %.3f, "tasks_per_s": %.0f, "failed": %d, ' ..
    '"latency_p50_ms": %.3f, "latency_p99_ms": %.3f}\n',
    summary.requests - failed, seconds, (summary.requests - failed) / seconds,
    failed, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
