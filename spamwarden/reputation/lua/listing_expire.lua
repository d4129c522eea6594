-- Removes listings whose expiry has come, writing an 'expired' change entry for each.
-- KEYS[1] sw:{sw}:listings, KEYS[2] sw:{sw}:listing-changes, KEYS[3] sw:{sw}:listing-serial,
-- KEYS[4] sw:{sw}:listing-expiry, KEYS[5] the hour's counters
--   (sw:{sw}:stats:listings:<hour>, TTL 8 days: reputation.stats.STATS_TTL),
-- KEYS[6] sw:{sw}:listing-keys (zset: the keys in order, for paged reads)
-- ARGV: now, limit (due entries looked at), maxlen
-- Returns: the JSON of each expired listing.
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, key in ipairs(due) do
  local cur = redis.call('HGET', KEYS[1], key)
  redis.call('ZREM', KEYS[4], key)
  if cur then
    local rec = cjson.decode(cur)
    if tonumber(rec['expires_at']) <= now then
      redis.call('HDEL', KEYS[1], key)
      redis.call('ZREM', KEYS[6], key)
      local serial = redis.call('INCR', KEYS[3])
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
        'op', 'expired', 'key', key, 'kind', rec['kind'], 'reason', rec['reason'],
        'code', rec['code'] or '', 'listed_at', tostring(rec['listed_at']),
        'expires_at', tostring(rec['expires_at']), 'serial', tostring(serial), 'note', '')
      redis.call('HINCRBY', KEYS[5], 'expired', 1)
      redis.call('EXPIRE', KEYS[5], 691200)
      out[#out + 1] = cur
    else
      redis.call('ZADD', KEYS[4], rec['expires_at'], key)
    end
  else
    redis.call('ZREM', KEYS[6], key)
  end
end
return out
