-- commit: compare-and-set of one state: new blob, version, consumed events, their results and
-- the applied-order log, all or nothing. A redelivered or concurrent drain finds the version or
-- the consumed count moved and writes nothing, so every event takes effect exactly once.
-- KEYS: 1 version, 2 blob, 3 history, 4 pending, 5 consumed count, 6 applied log, 7 epoch,
--       8 crash record, 9 outcome log, 10 error note, 11 payloads hash (enqueue_bulk.lua)
-- ARGV: 1 expected version, 2 expected consumed count, 3 new blob ('' = state unchanged),
--       4 events consumed n, 5 history kept, 6 log kept, 7 result TTL s, 8 new epoch ('' = keep),
--       9 outcomes kept, 10 the state's key prefix, 11 event ids, 12 log lines, 13 results (JSON),
--       14 wake flags (one '0'/'1' per event), 15 outcome entries; 11-13 and 15 are
--       newline-separated lists (JSON has no raw newlines), 16 now (ms), 17 minimum gap between
--       history entries (ms), 18 payload fields of the consumed events that had one
--       (newline-separated). Per-event keys are <prefix>:ev:<id>, <prefix>:wake:<id>, and
--       <prefix>:histat (when history was last pushed), in the state's hash slot.
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
local function lines(s)
  local out = {}
  for line in string.gmatch(s, '[^\n]+') do
    out[#out + 1] = line
  end
  return out
end
local function push(key, items)  -- RPUSH in chunks: unpack() has a stack limit
  for i = 1, #items, 1000 do
    redis.call('RPUSH', key, unpack(items, i, math.min(i + 999, #items)))
  end
end
local newver = ver
if ARGV[3] ~= '' then
  local keep = tonumber(ARGV[5])
  local histat = ARGV[10] .. ':histat'
  local last = tonumber(redis.call('GET', histat) or '-1')
  local now = tonumber(ARGV[16])
  if keep > 0 and (last < 0 or now - last >= tonumber(ARGV[17]) or now < last) then
    local old = redis.call('GET', KEYS[2])
    if old then
      redis.call('LPUSH', KEYS[3], old)
      redis.call('LTRIM', KEYS[3], 0, keep - 1)
      redis.call('SET', histat, now)
    end
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
  local prefix = ARGV[10]
  local ids, logs, results, wake = lines(ARGV[11]), lines(ARGV[12]), lines(ARGV[13]), ARGV[14]
  if #ids ~= n or #logs ~= n or #results ~= n or #wake ~= n then
    return redis.error_reply('commit: per-event lists do not match the count')
  end
  redis.call('LTRIM', KEYS[4], n, -1)
  redis.call('SET', KEYS[5], done + n)
  push(KEYS[6], logs)
  redis.call('LTRIM', KEYS[6], -tonumber(ARGV[6]), -1)
  for i = 1, n do
    redis.call('SET', prefix .. ':ev:' .. ids[i], results[i], 'EX', ttl)
    if string.sub(wake, i, i) == '1' then
      local w = prefix .. ':wake:' .. ids[i]
      redis.call('RPUSH', w, results[i])
      redis.call('EXPIRE', w, ttl)
    end
  end
  if ARGV[15] ~= '' then
    push(KEYS[9], lines(ARGV[15]))
    redis.call('LTRIM', KEYS[9], -tonumber(ARGV[9]), -1)
  end
  if ARGV[18] and ARGV[18] ~= '' then
    local fields = lines(ARGV[18])
    for i = 1, #fields, 1000 do
      redis.call('HDEL', KEYS[11], unpack(fields, i, math.min(i + 999, #fields)))
    end
  end
end
redis.call('DEL', KEYS[8])
return {1, newver, done + n}
