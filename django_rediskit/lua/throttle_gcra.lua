-- GCRA (a token bucket without a refill job): each rate's key is a STRING holding the
-- theoretical arrival time (TAT, us). One unit every window/limit, bursts of up to `burst`.
-- Per rate ARGV: limit, window, burst. Option: unused.
-- window / limit is rarely a whole number of us: comparisons allow 1 ns of rounding error, so
-- that a burst of exactly `burst` requests is never cut short by floating-point sums.
local EPS = 0.001
local tats, periods, taus, limits = {}, {}, {}, {}
for i = 1, #KEYS do
  local limit, window, burst = rate_arg(i, 3, 1), rate_arg(i, 3, 2), rate_arg(i, 3, 3)
  local period = window / limit
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  tats[i], periods[i], taus[i], limits[i] = tat, period, burst * period, limit
  if tat + cost * period - taus[i] > now + EPS then reply[1] = 0 end
end
for i = 1, #KEYS do
  local tat, period, tau = tats[i], periods[i], taus[i]
  local new = tat + cost * period
  local retry = 0
  if new - tau > now + EPS then retry = math.ceil(new - tau - now) end
  if reply[1] == 1 and consume then
    redis.call('SET', KEYS[i], string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000))
    tat = new
  end
  reply[#reply + 1] = math.max(math.floor((now - (tat - tau)) / period + 1e-6), 0)
  reply[#reply + 1] = math.ceil(tat - now)
  reply[#reply + 1] = retry
end
return reply
