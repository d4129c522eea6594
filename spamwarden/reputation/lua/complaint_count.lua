-- Counts one complaint against each indicator's window and marks it processed.
-- KEYS[1] sw:{sw}:done:<complaint id>, KEYS[2] sw:{sw}:listings,
--   then (sw:{sw}:win:c:<key>, sw:{sw}:win:r:<key>) per indicator
-- ARGV: complaint id, time, cutoff, window ttl, reporter, done ttl, cap, now,
--       then the indicators' listing keys
-- Returns: {fresh (1|0), then per indicator: complaints, distinct reporters, listed (1|0)}
-- Counting and the processed mark happen together: a replayed complaint
-- changes nothing and only reads the counts.  A complaint about an indicator
-- that is listed right now is not counted for it: the listing already answers
-- it, and a repeat offence needs complaints after the listing.
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[6])
local out = {fresh and 1 or 0}
local cap = tonumber(ARGV[7])
local now = tonumber(ARGV[8])
for i = 3, #KEYS, 2 do
  local c, r = KEYS[i], KEYS[i + 1]
  local name = ARGV[8 + (i - 1) / 2]
  local listed = 0
  local cur = redis.call('HGET', KEYS[2], name)
  if cur and tonumber(cjson.decode(cur)['expires_at']) > now then listed = 1 end
  if fresh and listed == 0 and tonumber(ARGV[2]) > tonumber(ARGV[3]) then
    redis.call('ZADD', c, ARGV[2], ARGV[1])
    redis.call('ZADD', r, 'GT', ARGV[2], ARGV[5])
    redis.call('EXPIRE', c, ARGV[4])
    redis.call('EXPIRE', r, ARGV[4])
  end
  redis.call('ZREMRANGEBYSCORE', c, '-inf', ARGV[3])
  redis.call('ZREMRANGEBYSCORE', r, '-inf', ARGV[3])
  local n = redis.call('ZCARD', c)
  if n > cap then
    redis.call('ZREMRANGEBYRANK', c, 0, n - cap - 1)
    n = cap
  end
  out[#out + 1] = n
  out[#out + 1] = redis.call('ZCARD', r)
  out[#out + 1] = listed
end
return out
