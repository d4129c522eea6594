-- Removes one recipient setting or one allow/deny entry and counts the change.
-- KEYS[1] the hash (sw:{sw}:settings:policies, sw:{sw}:settings:allow or :deny)
-- KEYS[2] sw:{sw}:settings:version
-- ARGV[1] field (target, or kind:value)
-- Returns: 1 removed, 0 there was no such field (the version is left alone).
local n = redis.call('HDEL', KEYS[1], ARGV[1])
if n == 1 then redis.call('INCR', KEYS[2]) end
return n
