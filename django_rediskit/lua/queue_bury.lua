-- Move one delivery to the dead-letter stream now (its handler failed on the last allowed
-- delivery, or its payload cannot be decoded): XADD to the dead letters, XACK, XDEL, atomically,
-- so the message is never lost between the two streams nor left in both.
-- KEYS[1] = the queue's stream, KEYS[2] = its dead-letter stream (one hash tag, one slot).
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] id, ARGV[4] reason, ARGV[5] deliveries.
-- Returns 1 if buried, 0 if the delivery is no longer this consumer's (another consumer
-- reclaimed it after the visibility timeout: that consumer decides its fate now).
local stream, dead = KEYS[1], KEYS[2]
local group, consumer, id = ARGV[1], ARGV[2], ARGV[3]
local pending = redis.call('XPENDING', stream, group, id, id, 1)[1]
if not pending or pending[2] ~= consumer then return 0 end
local add = {'XADD', dead, '*', 'dead:id', id, 'dead:reason', ARGV[4], 'dead:deliveries', ARGV[5]}
local entry = redis.call('XRANGE', stream, id, id)[1]
if entry then
  for _, item in ipairs(entry[2]) do add[#add + 1] = item end
end
redis.call(unpack(add))
redis.call('XACK', stream, group, id)
redis.call('XDEL', stream, id)
return 1
