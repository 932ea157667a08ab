-- Record activity on one session key without rewriting its payload: patch the fixed-width
-- "last activity + client fingerprint" field of the envelope and slide its TTL.
-- KEYS[1] = the session key; ARGV = last_activity (13 digits), fingerprint (8 chars), ttl_ms.
-- A missing key (revoked, expired) is left missing: SETRANGE alone would recreate it.
if redis.call('GETRANGE', KEYS[1], 0, 1) ~= 'R1' then
  return 0
end
redis.call('SETRANGE', KEYS[1], 2, ARGV[1] .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
