-- Counts one request to refuse all advertising mailed on behalf of an advertiser's
-- one-click link, up to the advertiser's daily limit.
-- KEYS: the advertiser's counter of the day (sw:{sw}:all-requests:<adv>:<day>)
-- ARGV: limit, TTL of the counter in seconds
-- Returns: 1 when counted (the mail may go), 0 when the limit was already reached.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
