-- One key's row metadata for the admin inspector, in one server call, all O(1) commands:
-- {type, pttl, encoding, length, memory}. Length uses the type's own O(1) size command and
-- memory uses MEMORY USAGE with SAMPLES 5 (SAMPLES 0 walks the whole value: forbidden).
-- A key that vanished between SCAN and this call answers {"none", -2, false, 0, false}.
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then
  return {'none', -2, false, 0, false}
end
local sizes = {string = 'STRLEN', list = 'LLEN', set = 'SCARD', zset = 'ZCARD', hash = 'HLEN',
               stream = 'XLEN'}
local length = 0
if sizes[kind] then
  length = redis.call(sizes[kind], key)
end
return {
  kind,
  redis.call('PTTL', key),
  redis.call('OBJECT', 'ENCODING', key),
  length,
  redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '5'),
}
