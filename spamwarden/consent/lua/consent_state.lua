-- The consent state of one recipient for one advertiser; with a hold, also takes one of
-- the recipient's ads of the day for a message about to be answered.
-- KEYS: dne, refusal:<adv>, consent:<adv>, sent:<adv>:<rcpt>
-- ARGV: rcpt, now, window, default cap, hold member ('' for none), hold seconds
-- Returns: {state, ads sent inside the window, cap}: state 'refused_all', 'refused',
--   'no_consent', 'consent_expired', 'over_cap' or 'ok'. With a hold member and 'ok', the
--   member is in the window's set (it counts as sent) until the send replaces it or, if the
--   message is never delivered, until it is older than the hold seconds.
local rcpt = ARGV[1]
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local hold = ARGV[5] or ''
local hold_for = tonumber(ARGV[6] or '0')
if redis.call('HEXISTS', KEYS[1], rcpt) == 1 then return {'refused_all', '0', tostring(cap)} end
if redis.call('HEXISTS', KEYS[2], rcpt) == 1 then return {'refused', '0', tostring(cap)} end
local raw = redis.call('HGET', KEYS[3], rcpt)
if not raw then return {'no_consent', '0', tostring(cap)} end
local c = cjson.decode(raw)
if c.max_per_day and tonumber(c.max_per_day) > 0 then cap = tonumber(c.max_per_day) end
local exp = tonumber(c.expires_at or 0)
if exp > 0 and exp <= now then return {'consent_expired', '0', tostring(cap)} end
-- holds of messages that were never delivered stop counting after hold_for seconds
local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. tostring(now - hold_for))
for _, m in ipairs(stale) do
  if string.sub(m, 1, 2) == 'h:' then redis.call('ZREM', KEYS[4], m) end
end
local n = redis.call('ZCOUNT', KEYS[4], '(' .. tostring(now - window), '+inf')
if hold ~= '' and redis.call('ZSCORE', KEYS[4], hold) then
  return {'ok', tostring(n), tostring(cap)}  -- this message holds its ad already
end
if n >= cap then return {'over_cap', tostring(n), tostring(cap)} end
if hold ~= '' then
  redis.call('ZADD', KEYS[4], now, hold)
  redis.call('PEXPIRE', KEYS[4], math.ceil(window * 1000) + 60000)
end
return {'ok', tostring(n), tostring(cap)}
