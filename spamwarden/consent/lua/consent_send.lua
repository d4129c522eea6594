-- Records one ad delivered to recipients (sliding window per recipient), the total and
-- the count of the current clock hour.
-- KEYS: sent:<adv>:<rcpt>..., then adv-stats:<adv>, then adv-sent:<adv>:<hour> last
-- ARGV: now, window, member, hour_ttl (seconds the hour's count is kept), hold member
--   (the message's hold taken by consent_state.lua, replaced by the send; '' for none)
-- Returns: the number of recipients recorded.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl = math.ceil(window * 1000) + 60000
local n = #KEYS - 2
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. tostring(now - window))
  if ARGV[5] and ARGV[5] ~= '' then redis.call('ZREM', KEYS[i], ARGV[5]) end
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
redis.call('HINCRBY', KEYS[n + 1], 'sent', n)
redis.call('INCRBY', KEYS[n + 2], n)
redis.call('EXPIRE', KEYS[n + 2], ARGV[4])
return n
