-- Write-behind: the worker applied version ARGV[1] of a record to the database.
-- KEYS[1] = the record HASH, KEYS[2] = the write-behind queue's stream (one hash tag).
-- ARGV[1] = version applied, ARGV[2] = the queue message (JSON), ARGV[3] = ms to keep a clean
-- record (it serves reads meanwhile; then reads go to the database again).
-- Returns 1 when the record is clean (no write since the one applied), 0 when newer writes came
-- meanwhile: then a new message is queued for them (the record stays dirty, never expires).
local record, stream = KEYS[1], KEYS[2]
local version = redis.call('HGET', record, 'n')
if not version then return 1 end  -- lost (a Redis restart) or already gone: nothing to do
if version == ARGV[1] then
  redis.call('HSET', record, 'd', 0)
  redis.call('PEXPIRE', record, ARGV[3])
  return 1
end
redis.call('XADD', stream, '*', 'p', ARGV[2])
return 0
