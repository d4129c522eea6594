-- Stores consent records, with their recipient index entries and log entries.
-- KEYS: consent hash, log, then one rcpt index key per record
-- ARGV: adv, now, log min id, then (rcpt, json) pairs
-- Returns: the number of records stored.
local n = 0
for i = 4, #ARGV, 2 do
  local rcpt = ARGV[i]
  redis.call('HSET', KEYS[1], rcpt, ARGV[i + 1])
  redis.call('SADD', KEYS[3 + n], ARGV[1])
  redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'op', 'consent', 'advertiser', ARGV[1],
             'recipient', rcpt, 'at', ARGV[2], 'detail', ARGV[i + 1])
  n = n + 1
end
return n
