-- Set the idle clock of deliveries this consumer still owns (XCLAIM ... IDLE ms JUSTID, which
-- leaves the delivery count alone):
--   IDLE 0                      a long handler extends its claim (delivery.extend());
--   IDLE visibility - backoff   a failed message becomes reclaimable after the retry backoff;
--   IDLE visibility             a stopping worker hands unstarted messages back at once.
-- KEYS[1] = the queue's stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] idle ms, ARGV[4..] ids.
-- Returns the ids whose clock was set; an id missing from the reply was reclaimed by another
-- consumer (or acknowledged) meanwhile, and is no longer the caller's to work on.
local stream, group, consumer, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local done = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local pending = redis.call('XPENDING', stream, group, id, id, 1)[1]
  if pending and pending[2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', idle, 'JUSTID')
    done[#done + 1] = id
  end
end
return done
