-- add() onto an entry that reads as a miss (its tags were invalidated, or it cannot be decoded):
-- replace it only if it is still exactly the stale bytes the caller saw, so a valid entry written
-- meanwhile by another adder is never overwritten. One key, so it runs unchanged on Cluster.
-- KEYS[1] = full cache key; ARGV[1] = the stale bytes; ARGV[2] = new bytes; ARGV[3] = PX ms
-- (0 = no expiry).
-- Returns 1 if replaced, 0 otherwise.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
