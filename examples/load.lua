-- wrk's requests for examples/load.sh: 90% reads (half GET /nodes/ID, half
-- GET /nodes/ID/neighbors), 10% POST /edges, over the NODES nodes the script
-- made (ids 1 .. NODES: the first node is 1).
local nodes = tonumber(os.getenv("NODES") or "200")
local json = { ["Content-Type"] = "application/json" }

request = function()
        local id = math.random(1, nodes)
        local r = math.random()
        if r < 0.45 then
                return wrk.format("GET", "/nodes/" .. id)
        elseif r < 0.9 then
                return wrk.format("GET", "/nodes/" .. id .. "/neighbors")
        end
        local body = string.format('{"src":%d,"dst":%d,"type":"KNOWS"}', id,
                                   math.random(1, nodes))
        return wrk.format("POST", "/edges", json, body)
end

-- wrk counts answers outside 2xx and 3xx: a correct run has none.
done = function(summary, latency, requests)
        io.write(string.format("non-2xx answers: %d\n", summary.errors.status))
end
