-- steal: take over the drain lock of a holder known to be dead (compare-and-set on the token).
-- KEYS: 1 drain lock. ARGV: 1 dead holder's token, 2 new token, 3 lease ms. Returns 1 taken.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
