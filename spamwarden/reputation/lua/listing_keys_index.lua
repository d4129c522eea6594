-- Builds the key index of listings written before it existed, one HSCAN page a call.
-- Used once by ListingStore/AsyncListingStore when the index's built marker is missing.
-- KEYS[1] sw:{sw}:listings (hash), KEYS[2] sw:{sw}:listing-keys (zset, every member
--   scored 0: ordered by key), KEYS[3] sw:{sw}:listing-keys-built (marker, no TTL)
-- ARGV: HSCAN cursor, keys per call
-- Returns: the next cursor ('0': the index is complete and the marker is set).
-- Each key is read from the hash inside this script, so a listing removed meanwhile is
-- never put back; listings written meanwhile are indexed by the listing scripts.
local res = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local fields = res[2]
for i = 1, #fields, 2 do
  redis.call('ZADD', KEYS[2], 0, fields[i])
end
if res[1] == '0' then redis.call('SET', KEYS[3], '1') end
return res[1]
