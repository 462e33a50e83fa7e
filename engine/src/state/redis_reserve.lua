-- Reserve one request's estimate on every tier, or on none (state/redis.rs). Redis runs a
-- script atomically, so no other replica can act between the checks and the increments:
-- that is what makes N racing replicas admit exactly `limit` units.
--
-- KEYS[i]                 the counter hash of tier i (fields `used`, `reserved`)
-- ARGV[3i-2, 3i-1, 3i]    amount, limit, TTL in seconds (0: the key never expires)
--
-- Returns {0} when every tier was reserved; otherwise {i, used, reserved} of the first tier
-- (1-based) without room, having written nothing.
local pending = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local amount = tonumber(ARGV[3 * i - 2])
  local limit = tonumber(ARGV[3 * i - 1])
  local stored = redis.call('HMGET', key, 'used', 'reserved')
  local used = tonumber(stored[1]) or 0
  -- A key named by two tiers counts both amounts, as if they were reserved one after the
  -- other (what the memory backend does), instead of each passing on its own.
  local reserved = (tonumber(stored[2]) or 0) + (pending[key] or 0)
  if used + reserved + amount > limit then
    return {i, used, reserved}
  end
  pending[key] = (pending[key] or 0) + amount
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[3 * i - 2])
  local ttl = tonumber(ARGV[3 * i])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return {0}
