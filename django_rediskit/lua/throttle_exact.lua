-- Sliding log: each rate's key is a LIST of admission times (integer us), newest at the head.
-- Guarantee: at most limit admitted in every trailing window. Rejected attempts are not
-- recorded (DRF's semantics). Per rate ARGV: limit, window. Option: unused.
-- Every redis.call costs server time on the request path: the admit path makes per rate one
-- LINDEX for the head, one for the tail, LLEN, LPUSH and PTTL (PEXPIRE about once a window).
local n = #KEYS
local limits, windows, heads, counts = {}, {}, {}, {}
for i = 1, n do
  limits[i], windows[i] = rate_arg(i, 2, 1), rate_arg(i, 2, 2)
  -- Time never goes backwards for an identity, even if the clock passed in does.
  local head = tonumber(redis.call('LINDEX', KEYS[i], 0))
  heads[i] = head
  if head == nil then counts[i] = 0 elseif head > now then now = head end
end
-- Drop expired entries (each entry is popped once: amortised O(1)) and evaluate every rate.
local allowed = true
for i = 1, n do
  if counts[i] == nil then
    local key, cutoff = KEYS[i], now - windows[i]
    local tail = tonumber(redis.call('LINDEX', key, -1))
    while tail ~= nil and tail <= cutoff do
      redis.call('RPOP', key)
      tail = tonumber(redis.call('LINDEX', key, -1))
    end
    counts[i] = tail == nil and 0 or redis.call('LLEN', key)
  end
  if counts[i] + cost > limits[i] then allowed = false end
end
if allowed and consume then
  -- Consume every rate. A cost of n pushes n copies of now (in chunks).
  local stamps = {now}
  for _ = 2, math.min(cost, 1000) do stamps[#stamps + 1] = now end
  for i = 1, n do
    local key, window = KEYS[i], windows[i]
    local left = cost
    while left > 0 do
      local chunk = math.min(left, #stamps)
      redis.call('LPUSH', key, unpack(stamps, 1, chunk))
      left = left - chunk
    end
    -- The key must outlive its newest entry by a window: keep its TTL between one and two
    -- windows, so PEXPIRE (a write, replicated) runs about once a window, not on every hit.
    local ms = math.ceil(window / 1000)
    if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, 2 * ms) end
    reply[#reply + 1] = limits[i] - counts[i] - cost
    reply[#reply + 1] = window -- the head is now: the log empties one window from now
    reply[#reply + 1] = 0
  end
  return reply
end
if not allowed then reply[1] = 0 end
for i = 1, n do
  local key, count, limit, window = KEYS[i], counts[i], limits[i], windows[i]
  local retry, reset = 0, 0
  if count + cost > limit then
    -- the entry whose expiry makes room for this cost
    retry = tonumber(redis.call('LINDEX', key, -(count + cost - limit))) + window - now
  end
  -- pruning never removes the head of a log that still holds entries
  if count > 0 then reset = heads[i] + window - now end
  reply[#reply + 1] = math.max(limit - count, 0)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
