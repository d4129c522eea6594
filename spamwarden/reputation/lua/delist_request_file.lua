-- Files a new delisting request, pending, unless too many are waiting: in all, or for
-- its listed key. Decided requests never count.
-- KEYS[1] sw:{sw}:delist-requests (hash), KEYS[2] sw:{sw}:delist-requests-by-time (zset),
-- KEYS[3..5] sw:{sw}:delist-requests:pending | :approved | :rejected (zsets),
-- KEYS[6] sw:{sw}:delist-requests-pending-keys (hash: listed key -> pending requests)
-- ARGV: request id, request JSON, filed_at, listed key, most pending requests in all,
--   most pending requests of one listed key, the client's rate bucket ('' for none: its
--   pending requests of the key are counted in KEYS[6] under "<key>\t<bucket>")
-- Returns: 1 filed, -1 not (ARGV[5] pending in all), -2 not (ARGV[6] pending for the key),
--   -3 not (this client's request for the key is pending already).
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return -1 end
local mine = nil
if ARGV[7] and ARGV[7] ~= '' then
  mine = ARGV[4] .. '\t' .. ARGV[7]
  if tonumber(redis.call('HGET', KEYS[6], mine) or '0') >= 1 then return -3 end
end
if tonumber(redis.call('HGET', KEYS[6], ARGV[4]) or '0') >= tonumber(ARGV[6]) then
  return -2
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[6], ARGV[4], 1)
if mine then redis.call('HINCRBY', KEYS[6], mine, 1) end
return 1
