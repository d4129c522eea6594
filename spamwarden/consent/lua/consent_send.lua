-- Records one ad delivered to recipients (sliding window per recipient) and the total.
-- KEYS: sent:<adv>:<rcpt>..., then adv-stats:<adv> last
-- ARGV: now, window, member
-- Returns: the number of recipients recorded.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl = math.ceil(window * 1000) + 60000
local n = #KEYS - 1
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. tostring(now - window))
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ttl)
end
redis.call('HINCRBY', KEYS[n + 1], 'sent', n)
return n
