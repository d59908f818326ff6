-- Shared by the wrk scripts here: counts non-2xx answers per thread and, when the run is
-- done, prints one line:
--   RESULT name=<name> rps=<float> p50_ms=<float> p99_ms=<float> non2xx=<int>
-- Use: local threads = dofile(<this file>)("<name>"), then add each thread in setup().
return function(result_name)
   local threads = {}
   non2xx = 0
   function response(status, headers, body)
      if status < 200 or status > 299 then non2xx = non2xx + 1 end
   end
   function done(summary, latency, requests)
      local bad = 0
      for _, t in ipairs(threads) do bad = bad + (tonumber(t:get("non2xx")) or 0) end
      io.write(string.format("RESULT name=%s rps=%.2f p50_ms=%.3f p99_ms=%.3f non2xx=%d\n",
         result_name, summary.requests / (summary.duration / 1e6),
         latency:percentile(50) / 1000, latency:percentile(99) / 1000, bad))
   end
   return threads
end
