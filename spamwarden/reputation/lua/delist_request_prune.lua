-- Drops delisting requests filed before a cutoff (the 90-day retention) from the
-- record hash and from every index, and a pending one from its key's count.
-- KEYS[1] sw:{sw}:delist-requests (hash), KEYS[2] sw:{sw}:delist-requests-by-time (zset),
-- KEYS[3..5] sw:{sw}:delist-requests:pending | :approved | :rejected (zsets),
-- KEYS[6] sw:{sw}:delist-requests-pending-keys (hash: listed key -> pending requests)
-- ARGV: cutoff (Unix seconds), most requests dropped by this call
-- Returns: how many were dropped (call again while it equals ARGV[2]).
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old == 0 then return 0 end
local recs = redis.call('HMGET', KEYS[1], unpack(old))
for i, id in ipairs(old) do
  if recs[i] and redis.call('ZSCORE', KEYS[3], id) then
    local ok, rec = pcall(cjson.decode, recs[i])
    if ok and type(rec) == 'table' and type(rec['key']) == 'string' then
      local counts = {rec['key']}
      if type(rec['client_bucket']) == 'string' and rec['client_bucket'] ~= '' then
        counts[2] = rec['key'] .. '\t' .. rec['client_bucket']
      end
      for _, field in ipairs(counts) do
        if redis.call('HINCRBY', KEYS[6], field, -1) <= 0 then
          redis.call('HDEL', KEYS[6], field)
        end
      end
    end
  end
end
redis.call('HDEL', KEYS[1], unpack(old))
for k = 2, 5 do redis.call('ZREM', KEYS[k], unpack(old)) end
return #old
