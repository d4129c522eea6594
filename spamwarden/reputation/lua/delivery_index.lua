-- Adds delivery ids to the ledger's per-recipient indexes: each key is a string of the
-- newest ids, oldest first, separated by spaces (one id alone in the common case, as the
-- indexes were written before they held several).
-- KEYS: sw:{sw}:dlv:f:<fingerprint>:<recipient> / sw:{sw}:dlv:m:<hash>:<recipient>, each
--       any number of times
-- ARGV: ttl, max ids kept, then one delivery id per key, in KEYS order
-- Returns: the number of keys written.
local ttl, max = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local id = ARGV[i + 2]
  local old = redis.call('GET', key)
  local value = id
  if old then
    local ids = {}
    for x in string.gmatch(old, '%S+') do
      if x ~= id then ids[#ids + 1] = x end
    end
    ids[#ids + 1] = id
    local first = math.max(1, #ids - max + 1)
    value = table.concat(ids, ' ', first, #ids)
  end
  redis.call('SET', key, value, 'EX', ttl)
end
return #KEYS
