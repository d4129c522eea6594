-- Lists keys, or extends their listings, writing a change entry for each write.
-- Used by ListingStore/AsyncListingStore add, add_many, import_many, list_offender.
-- KEYS[1] sw:{sw}:listings (hash), KEYS[2] sw:{sw}:listing-changes (stream),
-- KEYS[3] sw:{sw}:listing-serial, KEYS[4] sw:{sw}:listing-expiry (zset),
-- KEYS[5] sw:{sw}:offences (hash), KEYS[6] the hour's counters
--   (sw:{sw}:stats:listings:<hour>, TTL 8 days), KEYS[7] sw:{sw}:listing-keys (zset, every
--   member scored 0: the keys in order, for paged reads), then optionally the window keys
--   to clear (sw:{sw}:win:c:<key>, sw:{sw}:win:r:<key>; one-key calls only)
-- ARGV: now, mode (auto|manual), base_ttl, max_ttl, explicit_ttl ('' = escalate), maxlen,
--       reason, note, quiet ('1': return ops only), then (key, kind, code) triples
-- Returns: per key, op ('listed' | 'extended' | 'unchanged') followed, unless quiet,
--   by the listing JSON.
local now = tonumber(ARGV[1])
local mode = ARGV[2]
local base_ttl = tonumber(ARGV[3])
local max_ttl = tonumber(ARGV[4])
local explicit = tonumber(ARGV[5])
local maxlen = ARGV[6]
local reason = ARGV[7]
local note = ARGV[8]
local quiet = ARGV[9] == '1'
local stats_ttl = 691200  -- 8 days: reputation.stats.STATS_TTL
local out = {}
for i = 10, #ARGV, 3 do
  local key, kind, code = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', KEYS[1], key)
  local rec = nil
  local active = false
  if cur then
    rec = cjson.decode(cur)
    active = tonumber(rec['expires_at']) > now
  end
  if active and mode == 'auto' then
    if #KEYS > 7 then redis.call('DEL', unpack(KEYS, 8)) end
    out[#out + 1] = 'unchanged'
    if not quiet then out[#out + 1] = cur end
  else
    local op
    local ttl
    if active then
      op = 'extended'
      ttl = explicit or math.min(base_ttl * 2 ^ (tonumber(rec['offences']) - 1), max_ttl)
    else
      local off = redis.call('HINCRBY', KEYS[5], key, 1)
      op = 'listed'
      ttl = explicit or math.min(base_ttl * 2 ^ (off - 1), max_ttl)
      rec = {key = key, listed_at = now, offences = off}
    end
    rec['kind'] = kind
    rec['reason'] = reason
    rec['note'] = note
    rec['code'] = code
    rec['expires_at'] = now + ttl
    local enc = cjson.encode(rec)
    redis.call('HSET', KEYS[1], key, enc)
    if #KEYS > 7 then
      -- the engine's single-key listing: the complaints that led to it are used up
      redis.call('DEL', unpack(KEYS, 8))
    end
    redis.call('ZADD', KEYS[4], rec['expires_at'], key)
    redis.call('ZADD', KEYS[7], 0, key)
    local serial = redis.call('INCR', KEYS[3])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
      'op', op, 'key', key, 'kind', kind, 'reason', reason, 'code', code,
      'listed_at', tostring(rec['listed_at']), 'expires_at', tostring(rec['expires_at']),
      'serial', tostring(serial), 'note', note)
    redis.call('HINCRBY', KEYS[6], op, 1)
    redis.call('EXPIRE', KEYS[6], stats_ttl)
    out[#out + 1] = op
    if not quiet then out[#out + 1] = enc end
  end
end
return out
