-- Sets one recipient setting or one allow/deny entry, within a bound, and counts the change.
-- KEYS[1] the hash (sw:{sw}:settings:policies, sw:{sw}:settings:allow or :deny)
-- KEYS[2] sw:{sw}:settings:version
-- ARGV[1] field (target, or kind:value), ARGV[2] value (JSON), ARGV[3] most fields allowed
-- Returns: 1 added, 0 replaced, -1 refused because the hash already holds ARGV[3] fields.
-- The count and the write happen together, so concurrent writers never exceed the bound.
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
if exists == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
if exists == 1 then return 0 end
return 1
