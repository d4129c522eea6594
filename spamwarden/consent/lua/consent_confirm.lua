-- Marks a stored refusal as confirmed (once), with a log entry.
-- KEYS: refusal hash, log
-- ARGV: rcpt, now, log min id, adv
-- Returns: 1 when confirmed now, 0 when absent or already confirmed.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local r = cjson.decode(raw)
if r.confirmed_at and tonumber(r.confirmed_at) > 0 then return 0 end
r.confirmed_at = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'op', 'confirmed', 'advertiser', ARGV[4],
           'recipient', ARGV[1], 'at', ARGV[2], 'detail', '')
return 1
