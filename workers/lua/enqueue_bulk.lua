-- enqueue_bulk: accept many events for one state in one call, in the given order, at most once
-- per event id: the same effect as enqueue.lua for each event in turn, in one atomic step.
-- The payloads are not passed through Lua: the caller HSETs them into the state's payloads hash
-- in the same MULTI/EXEC, just before this script (a script's arguments cost Redis ~2.5 ns per
-- byte, so a 3 KB embedding cost more in Lua than everything else the event needs). The queue
-- entry is then "<seq> @<field>"; the commit that consumes the event deletes the field.
-- KEYS: 1 pending list, 2 seq counter, 3 drain flag, 4 epoch, 5 registry of states, 6 payloads
-- ARGV: 1 result TTL s, 2 flag TTL s, 3 trigger ('1' sets the flag), 4 expected epoch ('*' = any),
--       5 this state's registry member, 6 the state's key prefix (event keys are
--       <prefix>:ev:<id>, in the state's hash slot), 7 n, then n event ids, then n payload fields
-- Returns {1, publish, first seq, flag per event (1 accepted, 0 duplicate id)}, or {-1, epoch}
-- when the state was re-initialised since the caller checked the events against it. A refused
-- or duplicate event's payload field is deleted again.
local n = tonumber(ARGV[7])
if ARGV[4] ~= '*' then
  local epoch = redis.call('GET', KEYS[4]) or '0'
  if epoch ~= ARGV[4] then
    for i = 1, n, 1000 do  -- HDEL in chunks: unpack() has a stack limit
      redis.call('HDEL', KEYS[6], unpack(ARGV, 7 + n + i, 7 + n + math.min(i + 999, n)))
    end
    return {-1, epoch}
  end
end
local ttl = ARGV[1]
local prefix = ARGV[6] .. ':ev:'
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local out = {1, 0, seq + 1}
local items = {}
for i = 1, n do
  if redis.call('SET', prefix .. ARGV[7 + i], 'pending', 'NX', 'EX', ttl) then
    seq = seq + 1
    items[#items + 1] = seq .. ' @' .. ARGV[7 + n + i]
    out[3 + i] = 1
  else
    redis.call('HDEL', KEYS[6], ARGV[7 + n + i])
    out[3 + i] = 0
  end
end
if #items > 0 then
  for i = 1, #items, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(items, i, math.min(i + 999, #items)))
  end
  redis.call('SET', KEYS[2], seq)
  redis.call('SADD', KEYS[5], ARGV[5])
  if ARGV[3] == '1' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
    out[2] = 1
  end
end
return out
