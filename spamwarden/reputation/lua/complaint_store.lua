-- Stores one complaint with its de-duplication mark, the reporter's rate counter and
-- the training example, atomically, and counts it in the hour's statistics.
-- KEYS: stream, seen, rate, example, example index, reporter's example quota,
--       the hour's counters (sw:{sw}:stats:complaints:<hour>)
-- ARGV: seen_ttl, rate_limit, rate_window, training_ttl, now, example, fingerprint, min_id,
--       max_len (0: none), example_limit, quota_window, counter field, counter ttl,
--       fields...
-- Returns: {status, stream id[, 1 when the example was kept else 0]}: status 'added',
--   'duplicate' (stream id of the first) or 'rate_limited' ('').
local seen = redis.call('GET', KEYS[2])
if seen then return {'duplicate', seen} end
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n >= tonumber(ARGV[2]) then return {'rate_limited', ''} end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[8], '*', unpack(ARGV, 14))
if ARGV[9] ~= '0' then redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[9]) end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
if redis.call('INCR', KEYS[3]) == 1 or redis.call('TTL', KEYS[3]) < 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
redis.call('HINCRBY', KEYS[7], ARGV[12], 1)
redis.call('EXPIRE', KEYS[7], ARGV[13])
local kept = 0
if ARGV[6] ~= '' and tonumber(redis.call('GET', KEYS[6]) or '0') < tonumber(ARGV[10]) then
  if redis.call('INCR', KEYS[6]) == 1 or redis.call('TTL', KEYS[6]) < 0 then
    redis.call('EXPIRE', KEYS[6], ARGV[11])
  end
  kept = 1
  local ttl = tonumber(ARGV[4])
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ttl)
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', tonumber(ARGV[5]) - ttl)
  redis.call('EXPIRE', KEYS[5], ttl)
end
return {'added', id, kept}
