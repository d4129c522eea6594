-- Removes listings, writing a 'delisted' (or 'expired') change entry for each.
-- KEYS[1] sw:{sw}:listings, KEYS[2] sw:{sw}:listing-changes, KEYS[3] sw:{sw}:listing-serial,
-- KEYS[4] sw:{sw}:listing-expiry, KEYS[5] the hour's counters
--   (sw:{sw}:stats:listings:<hour>, TTL 8 days: reputation.stats.STATS_TTL),
-- KEYS[6] sw:{sw}:listing-keys (zset: the keys in order, for paged reads)
-- ARGV: now, maxlen, note, then listing keys
-- Returns: per key, op ('delisted' | 'expired' | 'absent') and the removed listing JSON
--   ('' when absent).
local now = tonumber(ARGV[1])
local maxlen = ARGV[2]
local note = ARGV[3]
local out = {}
for i = 4, #ARGV do
  local key = ARGV[i]
  local cur = redis.call('HGET', KEYS[1], key)
  if not cur then
    redis.call('ZREM', KEYS[4], key)
    redis.call('ZREM', KEYS[6], key)
    out[#out + 1] = 'absent'
    out[#out + 1] = ''
  else
    local rec = cjson.decode(cur)
    local op = 'delisted'
    if tonumber(rec['expires_at']) <= now then op = 'expired' end
    redis.call('HDEL', KEYS[1], key)
    redis.call('ZREM', KEYS[4], key)
    redis.call('ZREM', KEYS[6], key)
    local serial = redis.call('INCR', KEYS[3])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
      'op', op, 'key', key, 'kind', rec['kind'], 'reason', rec['reason'],
      'code', rec['code'] or '', 'listed_at', tostring(rec['listed_at']),
      'expires_at', tostring(rec['expires_at']), 'serial', tostring(serial), 'note', note)
    redis.call('HINCRBY', KEYS[5], op, 1)
    redis.call('EXPIRE', KEYS[5], 691200)
    out[#out + 1] = op
    out[#out + 1] = cur
  end
end
return out
