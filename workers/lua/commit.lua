-- commit: compare-and-set of one state: new blob, version, consumed events, their results and
-- the applied-order log, all or nothing. A redelivered or concurrent drain finds the version or
-- the consumed count moved and writes nothing, so every event takes effect exactly once.
-- KEYS: 1 version, 2 blob, 3 history, 4 pending, 5 consumed count, 6 applied log, 7 epoch,
--       8 crash record, 9 outcome log, 10 error note, then per consumed event i:
--       10+2i-1 result key, 10+2i wake list
-- ARGV: 1 expected version, 2 expected consumed count, 3 new blob ('' = state unchanged),
--       4 events consumed n, 5 history kept, 6 log kept, 7 result TTL s, 8 new epoch ('' = keep),
--       9 outcomes kept, 10 outcome entries m, then per event i: log entry, result JSON,
--       wake ('1'/'0'), then the m outcome entries
-- Returns {1, version, consumed} written; {0, version, consumed} the state moved (retry).
local ver = tonumber(redis.call('GET', KEYS[1]) or '0')
local done = tonumber(redis.call('GET', KEYS[5]) or '0')
if ver ~= tonumber(ARGV[1]) or done ~= tonumber(ARGV[2]) then
  return {0, ver, done}
end
local n = tonumber(ARGV[4])
if redis.call('LLEN', KEYS[4]) < n then
  return redis.error_reply('commit: fewer pending events than consumed')
end
local newver = ver
if ARGV[3] ~= '' then
  local keep = tonumber(ARGV[5])
  local old = redis.call('GET', KEYS[2])
  if old and keep > 0 then
    redis.call('LPUSH', KEYS[3], old)
    redis.call('LTRIM', KEYS[3], 0, keep - 1)
  end
  newver = ver + 1
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[1], newver)
  redis.call('DEL', KEYS[10])
end
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[7], ARGV[8])
end
if n > 0 then
  local ttl = tonumber(ARGV[7])
  redis.call('LTRIM', KEYS[4], n, -1)
  redis.call('SET', KEYS[5], done + n)
  for i = 1, n do
    local a = 10 + 3 * (i - 1)
    redis.call('RPUSH', KEYS[6], ARGV[a + 1])
    redis.call('SET', KEYS[10 + 2 * i - 1], ARGV[a + 2], 'EX', ttl)
    if ARGV[a + 3] == '1' then
      redis.call('RPUSH', KEYS[10 + 2 * i], ARGV[a + 2])
      redis.call('EXPIRE', KEYS[10 + 2 * i], ttl)
    end
  end
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[6]), -1)
  local m = tonumber(ARGV[10])
  if m > 0 then
    local b = 10 + 3 * n
    for j = 1, m do
      redis.call('RPUSH', KEYS[9], ARGV[b + j])
    end
    redis.call('LTRIM', KEYS[9], -tonumber(ARGV[9]), -1)
  end
end
redis.call('DEL', KEYS[8])
return {1, newver, done + n}
