-- enqueue_bulk: accept many events for one state in one call, in the given order, at most once
-- per event id; the same effect as enqueue.lua called for each event in turn, all in one atomic
-- step (one script call instead of one per event: the call itself cost Redis more than the work).
-- KEYS: 1 pending list, 2 seq counter, 3 drain flag, 4 epoch, 5 registry of states
-- ARGV: 1 result TTL s, 2 flag TTL s, 3 trigger ('1' sets the flag), 4 expected epoch ('*' = any),
--       5 this state's registry member, 6 the state's key prefix (event keys are
--       <prefix>:ev:<id>, in the state's hash slot), 7 n, then n event ids, then n payloads
-- Returns {1, publish, first seq, flag per event (1 accepted, 0 duplicate id)}, or {-1, epoch}
-- when the state was re-initialised since the caller checked the events against it (nothing
-- is queued then).
if ARGV[4] ~= '*' then
  local epoch = redis.call('GET', KEYS[4]) or '0'
  if epoch ~= ARGV[4] then
    return {-1, epoch}
  end
end
local n = tonumber(ARGV[7])
local ttl = ARGV[1]
local prefix = ARGV[6] .. ':ev:'
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = seq + 1
local out = {1, 0, first}
local items = {}
for i = 1, n do
  if redis.call('SET', prefix .. ARGV[7 + i], 'pending', 'NX', 'EX', ttl) then
    seq = seq + 1
    items[#items + 1] = seq .. ' ' .. ARGV[7 + n + i]
    out[3 + i] = 1
  else
    out[3 + i] = 0
  end
end
if #items > 0 then
  for i = 1, #items, 1000 do  -- RPUSH in chunks: unpack() has a stack limit
    redis.call('RPUSH', KEYS[1], unpack(items, i, math.min(i + 999, #items)))
  end
  redis.call('SET', KEYS[2], seq)
  redis.call('SADD', KEYS[5], ARGV[5])
  if ARGV[3] == '1' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
    out[2] = 1
  end
end
return out
