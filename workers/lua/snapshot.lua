-- snapshot: keep a copy of the current blob beside the rolling history (for rollback).
-- KEYS: 1 blob, 2 snapshot list. ARGV: 1 snapshots kept. Returns 1 copied, 0 no state.
local blob = redis.call('GET', KEYS[1])
if not blob then
  return 0
end
redis.call('LPUSH', KEYS[2], blob)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
return 1
