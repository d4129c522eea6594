-- Writes a delisting request and moves it to the index of its status, atomically.
-- Used by file_delist_request and decide_delist_request.
-- KEYS[1] sw:{sw}:delist-requests (hash), KEYS[2] sw:{sw}:delist-requests-by-time (zset),
-- KEYS[3..5] sw:{sw}:delist-requests:pending | :approved | :rejected (zsets: request id ->
--   time filed for pending, time decided otherwise; entries pruned with the request)
-- ARGV: request id, request JSON, filed_at, status, decided_at, only_if ('' or the
--   status the stored request must have, e.g. 'pending' for a decision)
-- Returns: 1 written, 0 not (no such request, or its status is not ARGV[6]).
local id, status = ARGV[1], ARGV[4]
if ARGV[6] ~= '' then
  local cur = redis.call('HGET', KEYS[1], id)
  if not cur or cjson.decode(cur)['status'] ~= ARGV[6] then return 0 end
end
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], id)
local sets = {pending = KEYS[3], approved = KEYS[4], rejected = KEYS[5]}
for name, key in pairs(sets) do
  if name ~= status then redis.call('ZREM', key, id) end
end
if status == 'pending' then
  redis.call('ZADD', KEYS[3], ARGV[3], id)
else
  redis.call('ZADD', sets[status], ARGV[5], id)
end
return 1
