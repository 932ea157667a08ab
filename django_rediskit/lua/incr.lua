-- Atomic cache incr: EXISTS + INCRBY in one step, so a key that expires in between is never
-- recreated without its TTL (Django's RedisCache does EXISTS then INCR from Python).
-- KEYS[1] = full cache key; ARGV[1] = delta; ARGV[2] = 1 to create a missing key.
-- Returns the new value, or the status "missing" / "notint" (value not an integer or overflow).
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local ok, result = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then
  return 'notint'
end
return result
