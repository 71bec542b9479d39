-- enqueue: accept one event for a state, in arrival order, at most once per event id.
-- KEYS: 1 pending list, 2 seq counter, 3 event result key, 4 drain flag, 5 epoch,
--       6 registry of states (so a sweep finds every queue)
-- ARGV: 1 event JSON, 2 result TTL s, 3 flag TTL s, 4 trigger ('1' sets the flag),
--       5 expected epoch ('*' = any), 6 this state's registry member
-- Returns {1, seq, publish} accepted; {0, status} duplicate id; {-1, epoch} the state was
-- re-initialised since the caller checked the event against it.
if ARGV[5] ~= '*' then
  local epoch = redis.call('GET', KEYS[5]) or '0'
  if epoch ~= ARGV[5] then
    return {-1, epoch}
  end
end
if not redis.call('SET', KEYS[3], 'pending', 'NX', 'EX', ARGV[2]) then
  return {0, redis.call('GET', KEYS[3])}
end
local seq = redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('RPUSH', KEYS[1], seq .. ' ' .. ARGV[1])
local publish = 0
if ARGV[4] == '1' and redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[3]) then
  publish = 1
end
return {1, seq, publish}
