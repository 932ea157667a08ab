-- Trim a queue's stream below what every consumer group is done with, never a blind MAXLEN:
-- for each group the floor is its oldest pending id (delivered, not acknowledged), or, when
-- nothing is pending, the id just after its last-delivered-id (entries not yet read stay).
-- Entries below the lowest floor of all groups are removed with XTRIM MINID ~ (whole radix
-- tree nodes, cheap) and LIMIT (bounded work per call). No group yet: nothing is trimmed.
-- KEYS[1] = the queue's stream. ARGV[1] = LIMIT (entries removed at most).
-- Returns {entries removed, floor id or ''}.
local stream = KEYS[1]
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local groups = redis.call('XINFO', 'GROUPS', stream)
local floor_ms, floor_seq
for _, group in ipairs(groups) do
  local name, last
  for i = 1, #group, 2 do
    if group[i] == 'name' then name = group[i + 1] end
    if group[i] == 'last-delivered-id' then last = group[i + 1] end
  end
  local ms, seq
  local summary = redis.call('XPENDING', stream, name)
  if tonumber(summary[1]) > 0 then
    ms, seq = parse(summary[2])
  else
    ms, seq = parse(last)
    seq = seq + 1
  end
  if floor_ms == nil or ms < floor_ms or (ms == floor_ms and seq < floor_seq) then
    floor_ms, floor_seq = ms, seq
  end
end
if floor_ms == nil then return {0, ''} end
local floor = string.format('%d-%d', floor_ms, floor_seq)
local removed = redis.call('XTRIM', stream, 'MINID', '~', floor, 'LIMIT', ARGV[1])
return {removed, floor}
