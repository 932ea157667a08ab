-- Sliding log: each rate's key is a LIST of admission times (integer us), newest at the head.
-- Guarantee: at most limit admitted in every trailing window. Rejected attempts are not
-- recorded (DRF's semantics). Per rate ARGV: limit, window. Option: unused.
local limits, windows, counts = {}, {}, {}
for i = 1, #KEYS do
  limits[i], windows[i] = rate_arg(i, 2, 1), rate_arg(i, 2, 2)
  -- Time never goes backwards for an identity, even if the clock passed in does.
  local head = tonumber(redis.call('LINDEX', KEYS[i], 0))
  if head and head > now then now = head end
end
-- Phase 1: drop expired entries (each entry is popped once: amortised O(1)) and evaluate.
for i = 1, #KEYS do
  local key, cutoff = KEYS[i], now - windows[i]
  while true do
    local tail = tonumber(redis.call('LINDEX', key, -1))
    if tail == nil or tail > cutoff then break end
    redis.call('RPOP', key)
  end
  counts[i] = redis.call('LLEN', key)
  if counts[i] + cost > limits[i] then reply[1] = 0 end
end
-- Phase 2: consume every rate, or none. A cost of n pushes n copies of now (in chunks).
local stamps = {now}
for _ = 2, math.min(cost, 1000) do stamps[#stamps + 1] = now end
for i = 1, #KEYS do
  local key, n, limit, window = KEYS[i], counts[i], limits[i], windows[i]
  local retry = 0
  if n + cost > limit then
    -- the entry whose expiry makes room for this cost
    retry = tonumber(redis.call('LINDEX', key, -(n + cost - limit))) + window - now
  end
  if reply[1] == 1 and consume then
    local left = cost
    while left > 0 do
      local chunk = math.min(left, #stamps)
      redis.call('LPUSH', key, unpack(stamps, 1, chunk))
      left = left - chunk
    end
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    n = n + cost
  end
  local reset = 0
  if reply[1] == 1 and consume then
    reset = window -- the head is now: the log empties one window from now
  elseif n > 0 then
    reset = tonumber(redis.call('LINDEX', key, 0)) + window - now
  end
  reply[#reply + 1] = math.max(limit - n, 0)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
