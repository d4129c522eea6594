-- The consent state of one recipient for one advertiser.
-- KEYS: dne, refusal:<adv>, consent:<adv>, sent:<adv>:<rcpt>
-- ARGV: rcpt, now, window, default cap
-- Returns: {state, ads sent inside the window, cap}: state 'refused_all', 'refused',
--   'no_consent', 'consent_expired', 'over_cap' or 'ok'.
local rcpt = ARGV[1]
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
if redis.call('HEXISTS', KEYS[1], rcpt) == 1 then return {'refused_all', '0', tostring(cap)} end
if redis.call('HEXISTS', KEYS[2], rcpt) == 1 then return {'refused', '0', tostring(cap)} end
local raw = redis.call('HGET', KEYS[3], rcpt)
if not raw then return {'no_consent', '0', tostring(cap)} end
local c = cjson.decode(raw)
if c.max_per_day and tonumber(c.max_per_day) > 0 then cap = tonumber(c.max_per_day) end
local exp = tonumber(c.expires_at or 0)
if exp > 0 and exp <= now then return {'consent_expired', '0', tostring(cap)} end
local n = redis.call('ZCOUNT', KEYS[4], '(' .. tostring(now - window), '+inf')
if n >= cap then return {'over_cap', tostring(n), tostring(cap)} end
return {'ok', tostring(n), tostring(cap)}
