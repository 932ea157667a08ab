-- One user's device index: KEYS[2] = HASH of compact entries, each value <= 64 bytes so a
-- user's index stays one small listpack-encoded key:
--   <sid>      -> "<expiry ms>|<device id>|<created s>|<last activity s>" (base 36, <= 45 B)
--   #<sid 1-6> -> "<ip>|<browser>|<os>|<short user agent>" (once a client was seen; built
--                 and cut to 61 B by useragent.client_field; a short name, as it costs memory
--                 per session: 6 random chars tell a user's sids apart, and a rare clash only
--                 mixes up two devices' displayed client)
-- KEYS[1] = the ZSET of the first layout (sid -> expiry, with JSON meta in KEYS[2]): when it
-- exists, it is converted into the layout above and deleted (lazy upgrade; same hash tag).
-- ARGV[1] is the operation:
--   index  sid ttl_ms did ct_ms client has_client cap policy existing_only old_sid
--          -> {status, client_changed, evicted sid, its device id, ...}; status 1 ok, 0 absent
--             (existing_only), -1 denied by the device cap, -2 old_sid no longer indexed
--             (revoked mid-rotation)
--   list   -> {sid, entry, client entry or '', ...} of live members
--   revoke mode arg... -> {sid, did, ...} removed; mode is all | others (arg = sid kept) |
--          device (arg = device id) | sids (args = sids)
-- Every call first prunes entries whose expiry has passed, and leaves the key expiring with its
-- latest entry (or deleted when empty), so an idle user leaves nothing behind.
local z, m = KEYS[1], KEYS[2]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'

local function cf(sid) return '#' .. string.sub(sid, 1, 6) end

local function b36(n)
  n = math.floor(tonumber(n) or 0)
  if n <= 0 then return '0' end
  local out = ''
  while n > 0 do
    local d = n % 36
    out = string.sub(DIGITS, d + 1, d + 1) .. out
    n = math.floor(n / 36)
  end
  return out
end

local function parse(raw)
  if type(raw) ~= 'string' then return nil end
  local exp, did, ct, la = string.match(raw, '^(%w+)|([%w_-]+)|(%w+)|(%w+)$')
  if not exp then return nil end
  return {exp = tonumber(exp, 36), did = did, ct = tonumber(ct, 36), la = tonumber(la, 36)}
end

local function encode(e)
  return b36(e.exp) .. '|' .. e.did .. '|' .. b36(e.ct) .. '|' .. b36(e.la)
end

-- The first layout kept the raw user agent; keep what fits, as useragent.shorten does
-- (families are re-derived from it when listed).
local function short_agent(ua, room)
  ua = string.gsub(ua, 'Mozilla/5%.0%s*', '')
  ua = string.gsub(ua, 'AppleWebKit/%S+%s*', '')
  ua = string.gsub(ua, '%(KHTML, like Gecko%)%s*', '')
  ua = string.gsub(ua, 'Gecko/%d+%s*', '')
  ua = string.gsub(ua, '|', '/')
  if #ua > room then
    local last = string.match(ua, '(%S+)$') or ''
    if #last < room / 2 then
      ua = string.sub(ua, 1, room - 2 - #last) .. '~ ' .. last
    else
      ua = string.sub(ua, 1, room)
    end
  end
  return ua
end

-- Rebuilt rather than edited in place: Redis never turns a hashtable-encoded hash (the JSON
-- values made it one) back into a listpack.
local function upgrade()
  local members = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
  local fresh = {}
  for i = 1, #members, 2 do
    local sid, exp = members[i], tonumber(members[i + 1])
    local ok, old = pcall(cjson.decode, redis.call('HGET', m, sid) or '')
    if exp > now and ok and type(old) == 'table' and type(old.did) == 'string'
        and string.match(old.did, '^[%w_-]+$') then
      fresh[#fresh + 1] = sid
      fresh[#fresh + 1] = encode({
        exp = exp, did = old.did, ct = (tonumber(old.ct) or now) / 1000,
        la = (tonumber(old.la) or now) / 1000})
      if type(old.ip) == 'string' then
        local ip = string.sub(string.gsub(old.ip, '|', ''), 1, 45)
        local ua = type(old.ua) == 'string' and old.ua or ''
        fresh[#fresh + 1] = cf(sid)
        fresh[#fresh + 1] = ip .. '|||' .. short_agent(ua, 58 - #ip)
      end
    end
  end
  redis.call('DEL', z, m)
  for i = 1, #fresh, 500 do
    redis.call('HSET', m, unpack(fresh, i, math.min(i + 499, #fresh)))
  end
end

if redis.call('EXISTS', z) == 1 then upgrade() end

-- live: sid -> entry; order: live entries (hash order); clients: client fields. Only the
-- expiry is decoded up front (this runs on every touch); other parts on demand, by full().
local live, order, dead, clients = {}, {}, {}, {}
do
  local flat = redis.call('HGETALL', m)
  for i = 1, #flat, 2 do
    local field = flat[i]
    if string.sub(field, 1, 1) ~= '#' then
      local exp = tonumber(string.match(flat[i + 1], '^(%w+)|') or '', 36)
      if exp and exp > now then
        local e = {sid = field, raw = flat[i + 1], exp = exp}
        live[field] = e
        order[#order + 1] = e
      else
        dead[#dead + 1] = field
      end
    end
  end
  local named = {}
  for sid in pairs(live) do named[cf(sid)] = true end
  for i = 1, #flat, 2 do
    local field = flat[i]
    if string.sub(field, 1, 1) == '#' then
      if named[field] then clients[field] = flat[i + 1] else dead[#dead + 1] = field end
    end
  end
end

local function did_of(e)
  return string.match(e.raw, '^%w+|([%w_-]+)|') or ''
end

-- The entry with all its parts (device id, times); nil when malformed.
local function full(e)
  local parsed = parse(e.raw)
  if parsed then parsed.sid = e.sid end
  return parsed
end

local function hdel(fields)
  for i = 1, #fields, 500 do
    redis.call('HDEL', m, unpack(fields, i, math.min(i + 499, #fields)))
  end
end

local function forget(sids)
  local fields = {}
  for _, sid in ipairs(sids) do
    live[sid] = nil
    fields[#fields + 1] = sid
    fields[#fields + 1] = cf(sid)
  end
  hdel(fields)
end

local function settle()
  local last = nil
  for _, e in pairs(live) do
    if not last or e.exp > last then last = e.exp end
  end
  if last then
    redis.call('PEXPIREAT', m, math.floor(last))
  else
    redis.call('DEL', m)
  end
end

hdel(dead)

if op == 'index' then
  local sid, ttl = ARGV[2], tonumber(ARGV[3])
  local old = ARGV[11]
  local entry, client = nil, nil
  if old ~= '' and old ~= sid then
    if not live[old] then
      settle()
      return {-2, 0}
    end
    entry = full(live[old])
    client = clients[cf(old)] or false
    forget({old})
  end
  local evicted, evicted_devices = {}, {}
  if not live[sid] then
    if ARGV[10] == '1' then
      settle()
      return {0, 0}
    end
    local cap = tonumber(ARGV[8])
    local alive = {}
    for _, e in ipairs(order) do
      if live[e.sid] then alive[#alive + 1] = e end
    end
    table.sort(alive, function(a, b) return a.exp < b.exp end)
    if cap > 0 and #alive >= cap then
      if ARGV[9] == 'deny' then
        settle()
        return {-1, 0}
      end
      for i = 1, #alive - cap + 1 do
        evicted[i] = alive[i].sid
        evicted_devices[i] = did_of(alive[i])
      end
      forget(evicted)
    end
  end
  if client == nil then client = clients[cf(sid)] or false end
  entry = entry or (live[sid] and full(live[sid]))
    or {did = ARGV[4], ct = tonumber(ARGV[5]) / 1000}
  local changed = 0
  if ARGV[7] == '1' then
    if client and client ~= ARGV[6] then changed = 1 end
    client = ARGV[6]
  end
  entry.la = now / 1000
  entry.exp = now + ttl
  live[sid] = entry
  redis.call('HSET', m, sid, encode(entry))
  if client then redis.call('HSET', m, cf(sid), client) end
  settle()
  local out = {1, changed}
  for i = 1, #evicted do
    out[#out + 1] = evicted[i]
    out[#out + 1] = evicted_devices[i]
  end
  return out
elseif op == 'list' then
  local out = {}
  for _, e in ipairs(order) do
    out[#out + 1] = e.sid
    out[#out + 1] = e.raw
    out[#out + 1] = clients[cf(e.sid)] or ''
  end
  settle()
  return out
elseif op == 'revoke' then
  local mode, arg = ARGV[2], ARGV[3]
  local chosen, out = {}, {}
  local function choose(e)
    live[e.sid] = nil  -- chosen once, even if named twice
    chosen[#chosen + 1] = e.sid
    out[#out + 1] = e.sid
    out[#out + 1] = did_of(e)
  end
  if mode == 'sids' then
    for i = 3, #ARGV do
      if live[ARGV[i]] then choose(live[ARGV[i]]) end
    end
  else
    for _, e in ipairs(order) do
      if mode == 'all' or (mode == 'others' and e.sid ~= arg)
          or (mode == 'device' and did_of(e) == arg) then
        choose(e)
      end
    end
  end
  forget(chosen)
  settle()
  return out
end
return redis.error_reply('session_user: unknown operation ' .. tostring(op))
