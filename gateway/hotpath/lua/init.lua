-- Seed missing budget counters from the ledger (never overwrite one that exists: another
-- gateway may have seeded it and reserved against it meanwhile).
-- KEYS[i] counter hash; ARGV from o = (i-1)*3: spent, ttl s (0: none), epoch
for i = 1, #KEYS do
  local o = (i - 1) * 3
  if redis.call('HEXISTS', KEYS[i], 'init') == 0 then
    redis.call('HSET', KEYS[i], 'init', ARGV[o + 3], 'spent', ARGV[o + 1], 'reserved', 0)
    local ttl = tonumber(ARGV[o + 2])
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return #KEYS
