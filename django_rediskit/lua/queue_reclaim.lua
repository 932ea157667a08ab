-- Reclaim a queue's deliveries left unacknowledged past the visibility timeout (a consumer that
-- died, hung, or handed a failed message back for a retry), and bury those delivered too often,
-- in one atomic step so a message is never both reclaimed and dead-lettered.
-- KEYS[1] = the queue's stream, KEYS[2] = its dead-letter stream (one hash tag, one slot).
-- ARGV[1] group, ARGV[2] consumer claiming, ARGV[3] min idle ms, ARGV[4] XAUTOCLAIM cursor,
-- ARGV[5] count, ARGV[6] max deliveries.
-- Returns {next cursor, {{id, deliveries, {field, value, ...}}, ...}, buried count}.
-- A message whose delivery count (after this claim) exceeds max deliveries goes to the dead
-- letters with its original fields plus dead:id, dead:reason and dead:deliveries, and is XACKed
-- and XDELed from the queue.
local stream, dead = KEYS[1], KEYS[2]
local group, consumer, idle = ARGV[1], ARGV[2], ARGV[3]
local max = tonumber(ARGV[6])
local reply = redis.call('XAUTOCLAIM', stream, group, consumer, idle, ARGV[4], 'COUNT', ARGV[5])
local claimed, buried = {}, 0
for _, entry in ipairs(reply[2]) do
  local id, fields = entry[1], entry[2]
  if not fields then
    -- Redis 6.2 returns entries deleted from the stream with nil fields: nothing to deliver.
    redis.call('XACK', stream, group, id)
  else
    local info = redis.call('XPENDING', stream, group, id, id, 1)[1]
    local deliveries = tonumber(info[4])
    if deliveries > max then
      local add = {'XADD', dead, '*', 'dead:id', id,
        'dead:reason', 'delivered ' .. (deliveries - 1) .. ' times without acknowledgement',
        'dead:deliveries', deliveries - 1}
      for _, item in ipairs(fields) do add[#add + 1] = item end
      redis.call(unpack(add))
      redis.call('XACK', stream, group, id)
      redis.call('XDEL', stream, id)
      buried = buried + 1
    else
      claimed[#claimed + 1] = {id, deliveries, fields}
    end
  end
end
return {reply[1], claimed, buried}
