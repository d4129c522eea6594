-- Builds the status indexes of delisting requests written before they existed, one
-- HSCAN page a call.
-- KEYS[1] sw:{sw}:delist-requests (hash), KEYS[2..4] sw:{sw}:delist-requests:pending |
--   :approved | :rejected (zsets), KEYS[5] sw:{sw}:delist-requests-indexed (marker, no TTL)
-- ARGV: HSCAN cursor, requests per call
-- Returns: the next cursor ('0': every request is indexed and the marker is set).
-- Records are read inside this script, so a decision made meanwhile (which moves the
-- request itself) is never undone; an unreadable record is left out of the indexes.
local res = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local fields = res[2]
local sets = {pending = KEYS[2], approved = KEYS[3], rejected = KEYS[4]}
for i = 1, #fields, 2 do
  local ok, rec = pcall(cjson.decode, fields[i + 1])
  if ok and type(rec) == 'table' and sets[rec['status']] then
    local score = rec['filed_at']
    if rec['status'] ~= 'pending' then score = rec['decided_at'] end
    if tonumber(score) then redis.call('ZADD', sets[rec['status']], score, fields[i]) end
  end
end
if res[1] == '0' then redis.call('SET', KEYS[5], '1') end
return res[1]
