-- wrk script for the benchmark's HTTP phase (test/bench/run, docs/performance.md):
-- the same work as scripts/checkin_mdm.sql and scripts/connect_mdm.sql, through
-- mdm-frontend.  One connection per wrk thread (-t = -c); thread t uses the
-- devices t, t + c, t + 2c, ... below n, as pgbench's clients do.
--
--   wrk -t C -c C -d S -s wrk.lua URL -- MODE DATA N NONCE APIKEY C
-- MODE: tokenupdate (one PUT /mdm TokenUpdate per request, random channel) or
--       connect (a cycle of three requests: PUT /v1/enqueue of a ProfileList to a
--       random channel, its Idle poll, which must get the command, and the
--       Acknowledged report, which must get an empty reply)
-- DATA: a Lua file (made by data.sql) returning {cert = ..., tu0/tu1, idle0/1,
--       ack0/1, eid0/1} per device and the enqueue body template.
-- Every message carries its Mac's certificate in X-Client-Cert, URL-escaped
-- PEM, as nginx's $ssl_client_escaped_cert (mdm-frontend --cert-header).

local threads = {}
local counter = 0

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

local checkin_headers = {["Content-Type"] = "application/x-apple-aspen-mdm-checkin"}
local report_headers = {["Content-Type"] = "application/x-apple-aspen-mdm"}

function init(args)
    mode, datafile, n, nonce, apikey = args[1], args[2], tonumber(args[3]), tonumber(args[4]), args[5]
    nthreads = tonumber(args[6])
    local data = dofile(datafile)
    devices, command = data.devices, data.command
    math.randomseed(nonce + tid * 7919)
    step, seq, bad = 0, 0, 0
    auth = "Basic " .. apikey   -- base64 of nanomdm:KEY
    per = math.floor(n / nthreads)
    -- the TokenUpdates of this thread's Macs, formatted once: the load
    -- generator shares the CPUs with what it measures, so it does as little
    -- as it can per request
    if mode == "tokenupdate" then
        -- wrk itself counts statuses other than 2xx/3xx (summary.errors.status):
        -- without a response function it parses no headers into Lua either
        response = nil
        tu = {}
        for j = 0, per - 1 do
            local e = devices[tid + nthreads * j]
            checkin_headers["X-Client-Cert"] = e.cert
            tu[2 * j] = wrk.format("PUT", "/mdm", checkin_headers, e.tu0)
            tu[2 * j + 1] = wrk.format("PUT", "/mdm", checkin_headers, e.tu1)
        end
    end
end

local function pick()
    local d = tid + nthreads * math.random(0, per - 1)
    return devices[d], math.random(0, 1)
end

function request()
    if mode == "tokenupdate" then
        return tu[math.random(0, 2 * per - 1)]
    end
    if step == 0 then
        cur, cu = pick()
        seq = seq + 1
        cmd = string.format("%08X-%04X-4000-8000-%012X", nonce % 4294967296, tid, seq)
        return wrk.format("PUT", "/v1/enqueue/" .. (cu == 0 and cur.eid0 or cur.eid1),
                          {Authorization = auth}, (command:gsub("@@CMD@@", cmd)))
    end
    report_headers["X-Client-Cert"] = cur.cert
    if step == 1 then
        return wrk.format("PUT", "/mdm", report_headers, cu == 0 and cur.idle0 or cur.idle1)
    end
    return wrk.format("PUT", "/mdm", report_headers,
                      ((cu == 0 and cur.ack0 or cur.ack1):gsub("@@CMD@@", cmd)))
end

function response(status, headers, body)
    if mode == "connect" then
        if status ~= 200 or (step == 1 and #body == 0) or (step == 2 and #body > 0) then
            bad = bad + 1
        end
        step = (step + 1) % 3
    elseif status ~= 200 then
        bad = bad + 1
    end
end

function done(summary, latency, requests)
    local b = 0
    for _, t in ipairs(threads) do
        b = b + (t:get("bad") or 0)
    end
    io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
                           latency:percentile(50), latency:percentile(99),
                           (summary.errors.status or 0) + summary.errors.connect + summary.errors.read
                           + summary.errors.write + summary.errors.timeout, b))
end
