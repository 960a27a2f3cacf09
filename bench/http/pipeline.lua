-- wrk script for bench/compare.sh http: send DEPTH requests (the first
-- script argument, default 16) back to back on each connection before
-- reading their responses (HTTP/1.1 pipelining).
--   wrk -s bench/http/pipeline.lua URL -- 16
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
