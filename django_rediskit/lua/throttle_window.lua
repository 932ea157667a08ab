-- Window counters: each rate's key is a HASH {w = window index, c = count in it, p = count in the
-- previous one}. Windows are offset per key by a jitter so resets do not all fall at once.
-- Option '1' (approx): sliding-window estimate p * (share of the previous window still inside
-- the trailing window) + c; at most ~2 x limit in a trailing window against an adversary.
-- Option '0' (fixed): only c counts; at most limit per window, 2 x limit across a boundary.
-- Per rate ARGV: limit, window, jitter (us, 0 <= jitter < window).
local weighted = option == '1'
local limits, windows, idxs, elapsed, curs, prevs, ests = {}, {}, {}, {}, {}, {}, {}
for i = 1, #KEYS do
  local limit, window, jitter = rate_arg(i, 3, 1), rate_arg(i, 3, 2), rate_arg(i, 3, 3)
  local idx = math.floor((now + jitter) / window)
  local el = now + jitter - idx * window
  local state = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')
  local w, c, p = tonumber(state[1]), tonumber(state[2]) or 0, tonumber(state[3]) or 0
  if w == nil then
    c, p = 0, 0
  elseif w > idx then
    idx, el = w, 0 -- the clock went back: stay in the stored window, conservatively
  elseif w == idx - 1 then
    c, p = 0, c
  elseif w < idx then
    c, p = 0, 0
  end
  if not weighted then p = 0 end
  local est = c + p * (window - el) / window
  if est + cost > limit then reply[1] = 0 end
  limits[i], windows[i], idxs[i], elapsed[i], curs[i], prevs[i], ests[i] =
    limit, window, idx, el, c, p, est
end
for i = 1, #KEYS do
  local limit, window, el, c, p, est = limits[i], windows[i], elapsed[i], curs[i], prevs[i], ests[i]
  local retry = 0
  if est + cost > limit then
    if c + cost > limit then
      -- wait for the next window, then (approx) for this window's weight to decay enough
      retry = window - el
      if weighted then retry = retry + math.ceil(window * (1 - (limit - cost) / c)) end
    else
      -- the previous window's weight must decay; the next boundary clears it anyway
      retry = math.min(math.ceil(window * (1 - (limit - c - cost) / p)) - el, window - el)
    end
    retry = math.max(retry, 1)
  end
  if reply[1] == 1 and consume then
    c, est = c + cost, est + cost
    redis.call('HSET', KEYS[i], 'w', idxs[i], 'c', c, 'p', p)
    local ttl = window - el
    if weighted then ttl = ttl + window end
    redis.call('PEXPIRE', KEYS[i], math.ceil(ttl / 1000))
  end
  local reset = 0
  if c > 0 or p > 0 then
    reset = window - el
    if weighted and c > 0 then reset = reset + window end
  end
  reply[#reply + 1] = math.max(math.floor(limit - est), 0)
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
end
return reply
