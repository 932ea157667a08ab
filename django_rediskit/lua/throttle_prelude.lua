-- Shared head of every throttle_*.lua script (prepended by django_rediskit.throttling.limiter).
-- KEYS[i]   = the state key of rate i; all keys share the identity's {hash tag}.
-- ARGV[1]   = '1' to consume when every rate allows, '0' to only look (peek)
-- ARGV[2]   = cost (integer >= 1)
-- ARGV[3]   = now in microseconds, or '' to use the Redis server's clock (TIME): one clock for
--             every app server, so their own clocks never matter
-- ARGV[4]   = an algorithm option (see each script)
-- ARGV[5..] = per rate, STRIDE values starting with limit and window (microseconds)
-- Reply: {allowed (1/0), then per rate: remaining, reset (us), retry-after (us, 0 if this rate
-- would allow)}.
local consume = ARGV[1] == '1'
local cost = tonumber(ARGV[2])
local option = ARGV[4]
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local function rate_arg(i, stride, j)
  return tonumber(ARGV[4 + (i - 1) * stride + j])
end
local reply = {1}
