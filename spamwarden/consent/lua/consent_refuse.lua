-- Records a refusal once, with its recipient index entry and log entry.
-- KEYS: refusal hash, rcpt index, log
-- ARGV: rcpt, record json, adv, now, log min id, op
-- Returns: {1, record json} when stored, {0, existing json} when one was there.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[5], '*', 'op', ARGV[6], 'advertiser', ARGV[3],
           'recipient', ARGV[1], 'at', ARGV[4], 'detail', ARGV[2])
return {1, ARGV[2]}
