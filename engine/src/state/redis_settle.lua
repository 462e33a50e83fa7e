-- Settle (or release) one request's reservation on every tier (state/redis.rs).
--
-- KEYS[2i-1]              the key tier i's estimate was reserved on (its window at reserve time)
-- KEYS[2i]                the key its actual usage counts in (the window current at settle time)
-- ARGV[3i-2, 3i-1, 3i]    estimate, actual, TTL in seconds of KEYS[2i] (0: never expires)
--
-- When the window rolled over in between, the two keys differ: the estimate leaves the old
-- window and the usage lands in the new one. Returns the number of tiers settled.
local tiers = #KEYS / 2
for i = 1, tiers do
  local held, current = KEYS[2 * i - 1], KEYS[2 * i]
  local estimate = tonumber(ARGV[3 * i - 2])
  local actual = tonumber(ARGV[3 * i - 1])
  if estimate > 0 then
    -- nil when the key expired with its window (or the concurrency safety TTL): there is
    -- nothing to give back, and writing would recreate the key without a TTL.
    local reserved = tonumber(redis.call('HGET', held, 'reserved'))
    if reserved and reserved > 0 then
      -- Floored at 0: a key that expired and was recreated holds others' reservations only.
      local give_back = math.min(estimate, reserved)
      redis.call('HINCRBY', held, 'reserved', string.format('%d', -give_back))
    end
  end
  if actual > 0 then
    redis.call('HINCRBY', current, 'used', ARGV[3 * i - 1])
    local ttl = tonumber(ARGV[3 * i])
    if ttl > 0 then
      redis.call('EXPIRE', current, ttl)
    end
  end
end
return tiers
