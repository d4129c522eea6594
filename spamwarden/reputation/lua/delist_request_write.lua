-- Writes a delisting request and moves it to the index of its status, atomically.
-- Used by decide_delist_request (file_delist_request files with delist_request_file).
-- KEYS[1] sw:{sw}:delist-requests (hash), KEYS[2] sw:{sw}:delist-requests-by-time (zset),
-- KEYS[3..5] sw:{sw}:delist-requests:pending | :approved | :rejected (zsets: request id ->
--   time filed for pending, time decided otherwise; entries pruned with the request),
-- KEYS[6] sw:{sw}:delist-requests-pending-keys (hash: listed key -> pending requests, and
--   "<key>\t<client bucket>" -> the client's; a request leaving or entering pending moves
--   both counts)
-- ARGV: request id, request JSON, filed_at, status, decided_at, only_if ('' or the
--   status the stored request must have, e.g. 'pending' for a decision)
-- Returns: 1 written, 0 not (no such request, or its status is not ARGV[6]).
local id, status = ARGV[1], ARGV[4]
local prev = nil
local cur = redis.call('HGET', KEYS[1], id)
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if ok and type(rec) == 'table' then prev = rec['status'] end
end
if ARGV[6] ~= '' and prev ~= ARGV[6] then return 0 end
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
local rec = cjson.decode(ARGV[2])
local counts = {rec['key']}
if type(rec['client_bucket']) == 'string' and rec['client_bucket'] ~= '' then
  counts[2] = rec['key'] .. '\t' .. rec['client_bucket']  -- the client's own count
end
for _, field in ipairs(counts) do
  if prev == 'pending' and status ~= 'pending' then
    -- requests filed before the count existed were never counted: never below 0
    if redis.call('HINCRBY', KEYS[6], field, -1) <= 0 then redis.call('HDEL', KEYS[6], field) end
  elseif prev ~= 'pending' and status == 'pending' then
    redis.call('HINCRBY', KEYS[6], field, 1)
  end
end
return 1
