#!lua flags=no-writes,allow-cross-slot-keys
-- Values of several keys that live on this node, in one call: get_many on Redis Cluster.
--
-- KEYS: none. ARGV: the keys, all served by the node the script is sent to (in different slots,
-- which MGET refuses: hence allow-cross-slot-keys, Redis >= 7.0 and Valkey). Keys are passed as
-- ARGV because a cluster node refuses a script whose declared KEYS span slots; the script only
-- reads the keys it is given and builds no key name. A key whose slot moved away (resharding)
-- makes the call fail; the caller then reads those keys through redirection-aware commands.
local values = {}
for i, key in ipairs(ARGV) do
  values[i] = redis.call('GET', key)
end
return values
