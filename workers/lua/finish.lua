-- finish: a drain that found its queue empty lets go; atomic with enqueue, so an event that
-- arrives after this sees no flag and triggers a new drain.
-- KEYS: 1 pending list, 2 drain flag, 3 drain lock. ARGV: 1 lock token
-- Returns 1 released; 0 events arrived meanwhile (keep draining).
if redis.call('LLEN', KEYS[1]) > 0 then
  return 0
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
return 1
