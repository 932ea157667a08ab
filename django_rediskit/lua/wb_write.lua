-- Write-behind: record a write in Redis at once and queue its durable write, coalesced.
-- KEYS[1] = the key's record, a HASH {v = value, n = version, d = 1 while a durable write is
--           queued}; KEYS[2] = the write-behind queue's stream (one hash tag, one slot).
-- ARGV[1] = 'set' (ARGV[2] = the JSON value) or 'incr' (ARGV[2] = integer amount),
-- ARGV[3] = the queue message (JSON) to add when the key is not already queued,
-- ARGV[4] = the counter's current database value for 'incr' on a missing record ('' if unknown).
-- Returns {status, value, version}: status 1 written (and queued if it was clean), 0 'incr'
-- needs the database value first (ARGV[4] was ''; call again with it).
-- Coalescing: one queued message per dirty key, whatever the number of writes; the worker
-- applies the latest value (see wb_done.lua), so 1,000 increments cost one database write.
local record, stream = KEYS[1], KEYS[2]
local mode, arg, message, base = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local value
if mode == 'set' then
  redis.call('HSET', record, 'v', arg)
  value = arg
else
  if redis.call('EXISTS', record) == 0 then
    if base == '' then return {0, false, false} end
    redis.call('HSET', record, 'v', base, 'n', 0, 'd', 0)
  end
  value = redis.call('HINCRBY', record, 'v', arg)
end
local version = redis.call('HINCRBY', record, 'n', 1)
redis.call('PERSIST', record)  -- a dirty record never expires
if redis.call('HGET', record, 'd') ~= '1' then
  redis.call('HSET', record, 'd', 1)
  redis.call('XADD', stream, '*', 'p', message)
end
return {1, value, version}
