-- One user's device index: KEYS[1] = ZSET sid -> expiry (ms, Redis clock), KEYS[2] = HASH
-- sid -> JSON meta {did, ct, la, ip, ua}. Both share the user's {hash tag}.
-- ARGV[1] is the operation:
--   index  sid ttl_ms did ct ip ua has_client cap policy existing_only old_sid
--          -> {status, client_changed, evicted sid, its device id, ...}; status 1 ok, 0 absent
--             (existing_only),
--             -1 denied by the device cap, -2 old_sid no longer indexed (revoked mid-rotation)
--   list   -> {sid, expiry, meta, ...} of live members
--   revoke mode arg... -> {sid, did, ...} removed; mode is all | others (arg = sid kept) |
--          device (arg = device id) | sids (args = sids)
-- Every call first prunes members whose expiry has passed, and leaves both keys expiring with
-- their latest member (or deleted when empty), so an idle user leaves nothing behind.
local z, m = KEYS[1], KEYS[2]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function forget(members)
  for i = 1, #members, 500 do
    local chunk = {}
    for j = i, math.min(i + 499, #members) do chunk[#chunk + 1] = members[j] end
    redis.call('ZREM', z, unpack(chunk))
    redis.call('HDEL', m, unpack(chunk))
  end
end

local function decode(raw)
  if not raw then return nil end
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' then return value end
  return nil
end

local function settle()
  local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('DEL', z, m)
  else
    local at = math.floor(tonumber(last[2]))
    redis.call('PEXPIREAT', z, at)
    redis.call('PEXPIREAT', m, at)
  end
end

forget(redis.call('ZRANGEBYSCORE', z, '-inf', now))

if op == 'index' then
  local sid, ttl = ARGV[2], tonumber(ARGV[3])
  local old = ARGV[12]
  local meta = nil
  if old ~= '' and old ~= sid then
    if not redis.call('ZSCORE', z, old) then
      settle()
      return {-2, 0}
    end
    meta = decode(redis.call('HGET', m, old))
    forget({old})
  end
  local evicted, evicted_devices = {}, {}
  if not redis.call('ZSCORE', z, sid) then
    if ARGV[11] == '1' then
      settle()
      return {0, 0}
    end
    local cap = tonumber(ARGV[9])
    if cap > 0 then
      local n = redis.call('ZCARD', z)
      if n >= cap then
        if ARGV[10] == 'deny' then
          settle()
          return {-1, 0}
        end
        evicted = redis.call('ZRANGE', z, 0, n - cap)
        for i, victim in ipairs(evicted) do
          local victim_meta = decode(redis.call('HGET', m, victim))
          evicted_devices[i] = (victim_meta and type(victim_meta.did) == 'string') and victim_meta.did or ''
        end
        forget(evicted)
      end
    end
  end
  meta = meta or decode(redis.call('HGET', m, sid)) or {did = ARGV[4], ct = tonumber(ARGV[5])}
  local changed = 0
  if ARGV[8] == '1' then
    if meta.ip ~= nil and (meta.ip ~= ARGV[6] or meta.ua ~= ARGV[7]) then changed = 1 end
    meta.ip = ARGV[6]
    meta.ua = ARGV[7]
  end
  meta.la = now
  redis.call('ZADD', z, now + ttl, sid)
  redis.call('HSET', m, sid, cjson.encode(meta))
  settle()
  local out = {1, changed}
  for i = 1, #evicted do
    out[#out + 1] = evicted[i]
    out[#out + 1] = evicted_devices[i]
  end
  return out
elseif op == 'list' then
  local members = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  local out = {}
  for i = 1, #members, 2 do
    out[#out + 1] = members[i]
    out[#out + 1] = members[i + 1]
    out[#out + 1] = redis.call('HGET', m, members[i]) or ''
  end
  settle()
  return out
elseif op == 'revoke' then
  local mode, arg = ARGV[2], ARGV[3]
  local chosen = {}
  if mode == 'sids' then
    for i = 3, #ARGV do
      if redis.call('ZSCORE', z, ARGV[i]) or redis.call('HEXISTS', m, ARGV[i]) == 1 then
        chosen[#chosen + 1] = ARGV[i]
      end
    end
  else
    local seen = {}
    local candidates = redis.call('ZRANGE', z, 0, -1)
    for _, sid in ipairs(redis.call('HKEYS', m)) do candidates[#candidates + 1] = sid end
    for _, sid in ipairs(candidates) do
      if not seen[sid] then
        seen[sid] = true
        if mode == 'all' or (mode == 'others' and sid ~= arg) then
          chosen[#chosen + 1] = sid
        elseif mode == 'device' then
          local meta = decode(redis.call('HGET', m, sid))
          if meta and meta.did == arg then chosen[#chosen + 1] = sid end
        end
      end
    end
  end
  local out = {}
  for _, sid in ipairs(chosen) do
    local meta = decode(redis.call('HGET', m, sid))
    out[#out + 1] = sid
    out[#out + 1] = (meta and type(meta.did) == 'string') and meta.did or ''
  end
  forget(chosen)
  settle()
  return out
end
return redis.error_reply('session_user: unknown operation ' .. tostring(op))
