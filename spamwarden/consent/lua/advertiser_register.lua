-- Registers or updates an advertiser and claims its sending domains.
-- KEYS: adv hash, advertisers set, domains hash
-- ARGV: id, name, contact, created_at, token_sha256 ('' keeps), replace (0/1), domains...
-- Returns: {'taken', domain, owner} when a domain belongs to another advertiser,
--   else {'ok', created_at, ''}.
for i = 7, #ARGV do
  local owner = redis.call('HGET', KEYS[3], ARGV[i])
  if owner and owner ~= ARGV[1] then return {'taken', ARGV[i], owner} end
end
local domains = {}
local seen = {}
local old = redis.call('HGET', KEYS[1], 'domains')
if old and ARGV[6] == '0' then
  for _, d in ipairs(cjson.decode(old)) do
    if not seen[d] then table.insert(domains, d); seen[d] = true end
  end
end
for i = 7, #ARGV do
  if not seen[ARGV[i]] then table.insert(domains, ARGV[i]); seen[ARGV[i]] = true end
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[1])
end
local created = redis.call('HGET', KEYS[1], 'created_at') or ARGV[4]
local fields = {'name', ARGV[2], 'contact', ARGV[3], 'created_at', created,
                'domains', cjson.encode(domains)}
if #domains == 0 then fields[8] = '[]' end
if ARGV[5] ~= '' then table.insert(fields, 'token_sha256'); table.insert(fields, ARGV[5]) end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[1])
return {'ok', created, ''}
