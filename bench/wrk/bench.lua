-- wrk script used by bench/run.py: one request shape per run, and one JSON line at the end.
--
-- Configured from the environment (run.py sets these):
--   BENCH_METHOD, BENCH_PATH          the request line (default GET /)
--   BENCH_TOKEN                       sent as "Authorization: Bearer ..." when set
--   BENCH_BODY_FILE, BENCH_CONTENT_TYPE   a fixed request body (login's JSON)
--   BENCH_MODE=upload                 multipart POST /books/ whose title is unique per request
--   BENCH_IMAGE_FILE                  the cover_image file of the upload
--   BENCH_NONCE                       makes titles unique across runs (warm-up, measurement)
--
-- done() prints: BENCH_JSON {"requests": ..., "non2xx": ..., "latency_us": {"p50": ...}, ...}
-- Non-2xx responses are counted, so a case answered by fast 401s or 409s can be flagged.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local function read_file(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   return data
end

local function env(name, default)
   local value = os.getenv(name)
   if value == nil or value == "" then return default end
   return value
end

function init(args)
   non2xx = 0
   first_bad = 0
   counter = 0
   mode = env("BENCH_MODE", "fixed")
   method = env("BENCH_METHOD", "GET")
   path = env("BENCH_PATH", "/")
   headers = {}
   local token = env("BENCH_TOKEN", nil)
   if token then headers["Authorization"] = "Bearer " .. token end

   if mode == "upload" then
      local nonce = env("BENCH_NONCE", "0")
      local boundary = "----wrk-bench-" .. nonce
      local image = read_file(env("BENCH_IMAGE_FILE", "cover.jpg"))
      headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
      -- Built once per thread; each request only splices in its title.
      before_title = "--" .. boundary .. "\r\n"
         .. "Content-Disposition: form-data; name=\"title\"\r\n\r\n"
      after_title = "\r\n--" .. boundary .. "\r\n"
         .. "Content-Disposition: form-data; name=\"description\"\r\n\r\n"
         .. "A cover uploaded by the benchmark.\r\n--" .. boundary .. "\r\n"
         .. "Content-Disposition: form-data; name=\"category\"\r\n\r\n"
         .. "science\r\n--" .. boundary .. "\r\n"
         .. "Content-Disposition: form-data; name=\"cover_image\"; filename=\"cover.jpg\"\r\n"
         .. "Content-Type: image/jpeg\r\n\r\n"
         .. image .. "\r\n--" .. boundary .. "--\r\n"
      title_prefix = "Bench upload " .. nonce .. " thread " .. tid .. " number "
   else
      local body = nil
      local body_file = env("BENCH_BODY_FILE", nil)
      if body_file then
         body = read_file(body_file)
         headers["Content-Type"] = env("BENCH_CONTENT_TYPE", "application/json")
      end
      fixed_request = wrk.format(method, path, headers, body)
   end
end

function request()
   if mode == "upload" then
      counter = counter + 1
      return wrk.format(method, path, headers, before_title .. title_prefix .. counter .. after_title)
   end
   return fixed_request
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if first_bad == 0 then first_bad = status end
   end
end

function done(summary, latency, requests)
   local bad, first = 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("non2xx")
      local status = thread:get("first_bad")
      if first == 0 and status ~= 0 then first = status end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_JSON {\"requests\": %.0f, \"duration_us\": %.0f, \"bytes\": %.0f, "
      .. "\"non2xx\": %.0f, \"first_non2xx_status\": %.0f, "
      .. "\"socket_errors\": {\"connect\": %.0f, \"read\": %.0f, \"write\": %.0f, \"timeout\": %.0f}, "
      .. "\"latency_us\": {\"min\": %.0f, \"mean\": %.1f, \"p50\": %.0f, \"p90\": %.0f, "
      .. "\"p99\": %.0f, \"max\": %.0f}}\n",
      summary.requests, summary.duration, summary.bytes, bad, first,
      e.connect, e.read, e.write, e.timeout,
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
