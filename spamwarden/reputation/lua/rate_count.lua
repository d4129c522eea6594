-- Counts one request against an hourly per-client limit.
-- KEYS[1] sw:{sw}:rate:<what>:<client>:<slot> (integer, TTL ARGV[2])
-- ARGV: limit, ttl
-- Returns: the count after this request, or -1 over the limit.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return -1 end
return n
