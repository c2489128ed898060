-- Admit one request: loop breaker, every budget on the chain, throttle bands, rate caps.
-- Atomic: either every reservation is made or nothing changes (except the loop counter and
-- alert events, which record the attempt itself).
--
-- KEYS[1] key rate window (zset)   KEYS[2] key tokens-per-minute counter
-- KEYS[3] loop counter             KEYS[4] alerts stream
-- KEYS[5] the workspace's live reservations (zset, score = expiry ms, member
--   "<request id>|<counter key>=<epoch>=<amount>|..."): a reservation never settled (a gateway
--   died mid-call) is dropped after ARGV[12] ms, when a budget would otherwise refuse.
-- KEYS[5+i] counter hash of budget i, KEYS[5+n+i] throttle window (zset) of budget i
-- ARGV[1] request id  ARGV[2] rpm (<=0: none)  ARGV[3] tpm (<=0: none)  ARGV[4] token estimate
-- ARGV[5] loop max (<=0: off)  ARGV[6] loop window s  ARGV[7] loop enforce (1/0)
-- ARGV[8] n budgets  ARGV[9] workspace id  ARGV[10] loop subject
-- ARGV[11] the budgets, space-separated (one argument: far cheaper to pack than 9n), budget i
--   from o = (i-1)*9: limit, reserve, hard (1/0), throttle threshold (-1: none), throttle rpm,
--   money (1/0), budget id, period key, ladder "step=threshold,..." (or "-")
-- ARGV[12] reservation ttl ms
-- ARGV[13] rate windows (requests/minute caps set as `rpm` budgets on any scope), space-separated
--   limits; window j is KEYS[5+2n+j]
-- Returns {'ok', remaining (tightest money budget, after this reservation), has_money,
--          loop count, reservation member, epoch_1..epoch_n}
--        | {'missing', i...} | {'budget', i, spent, reserved, limit}
--        | {'throttle', i, retry_ms} | {'rate', retry_ms} | {'tpm', retry_ms} | {'loop', count}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[8])
-- The packed argument split on single spaces with a plain find: `gmatch('%S+')` took ~20 us
-- for 5 budgets (45 words), about half the script's own time; this takes ~9 (same words: the
-- gateway joins non-empty words with one space).
local function words(s)
  local out, pos, find, sub = {}, 1, string.find, string.sub
  while true do
    local e = find(s, ' ', pos, true)
    local w = sub(s, pos, e and e - 1 or -1)
    if w ~= '' then out[#out + 1] = w end
    if not e then return out end
    pos = e + 1
  end
end
local B = words(ARGV[11] or '')

local spent, reserved, epochs, missing = {}, {}, {}, {}
local function read()
  for i = 1, n do
    local v = redis.call('HMGET', KEYS[5 + i], 'init', 'spent', 'reserved')
    if not v[1] then
      missing[#missing + 1] = i
    else
      epochs[i] = v[1]
      spent[i] = tonumber(v[2]) or 0
      reserved[i] = tonumber(v[3]) or 0
    end
  end
end
read()
if #missing > 0 then
  table.insert(missing, 1, 'missing')
  return missing
end

-- Drop expired reservations (rare: only after a gateway died mid-call). Their counters share
-- this workspace's hash slot, so touching them from here is cluster-safe.
local function purge()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 200)
  if #expired == 0 then return false end
  for _, member in ipairs(expired) do
    for key, epoch, amount in string.gmatch(member, '|([^=|]+)=([^=|]+)=(%d+)') do
      if redis.call('HGET', key, 'init') == epoch then
        redis.call('HINCRBY', key, 'reserved', -tonumber(amount))
      end
    end
  end
  redis.call('ZREM', KEYS[5], unpack(expired))
  return true
end

local loop_max = tonumber(ARGV[5])
local looped = 0
if loop_max > 0 then
  local c = redis.call('INCR', KEYS[3])
  if c == 1 then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6])) end
  if c > loop_max then
    looped = c
    if c == loop_max + 1 then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'kind', 'loop',
        'workspace_id', ARGV[9], 'subject', ARGV[10], 'count', c, 'at_ms', now)
    end
    if ARGV[7] == '1' then return {'loop', c} end
  end
end

-- Hard stops first: a 402 tells the client not to retry, which beats a 429.
-- At the cap is refused; a call whose worst case could pass the cap is refused; a call that
-- reserves nothing (a zero-price model under a money budget) is never blocked.
local function over(i)
  local o = (i - 1) * 9
  local limit = tonumber(B[o + 1])
  local reserve = tonumber(B[o + 2])
  local used = spent[i] + reserved[i]
  return B[o + 3] == '1' and reserve > 0 and (used >= limit or used + reserve > limit)
end
local function in_band(i)
  local o = (i - 1) * 9
  local threshold = tonumber(B[o + 4])
  return threshold >= 0 and tonumber(B[o + 5]) > 0 and spent[i] + reserved[i] >= threshold
end

local purged = false
for i = 1, n do
  if (over(i) or in_band(i)) and not purged then
    purged = true
    if purge() then read() end
  end
  if over(i) then
    local o = (i - 1) * 9
    -- Refused: the budget is full for this call, so the ladder reaches 100 %. Every step not yet
    -- raised (e.g. 90 % when spend sits at 85 % and no call fits) is raised now, in order, each
    -- once per period (the same HSETNX flags settle uses), then 100 %.
    local steps = {}
    for step in string.gmatch(B[o + 9] or '', '(%d+)=%d+') do
      if tonumber(step) < 100 then steps[#steps + 1] = step end
    end
    steps[#steps + 1] = '100'
    for _, step in ipairs(steps) do
      if redis.call('HSETNX', KEYS[5 + i], 'a' .. step, 1) == 1 then
        redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'kind', 'ladder',
          'workspace_id', ARGV[9], 'budget_id', B[o + 7], 'period', B[o + 8], 'step', step,
          'spent', spent[i], 'limit', B[o + 1], 'refused', 1, 'at_ms', now)
      end
    end
    return {'budget', i, spent[i], reserved[i], tonumber(B[o + 1])}
  end
end

local bands = {}
for i = 1, n do
  if in_band(i) then
    local z = KEYS[5 + n + i]
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 60000)
    if redis.call('ZCARD', z) >= tonumber(B[(i - 1) * 9 + 5]) then
      local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      return {'throttle', i, tonumber(oldest[2]) + 60000 - now}
    end
    bands[#bands + 1] = z
  end
end

local windows = {}
local j = 0
for word in string.gmatch(ARGV[13] or '', '%S+') do
  j = j + 1
  local z = KEYS[5 + 2 * n + j]
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 60000)
  if redis.call('ZCARD', z) >= tonumber(word) then
    local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    return {'window', j, tonumber(oldest[2]) + 60000 - now}
  end
  windows[#windows + 1] = z
end

local rpm = tonumber(ARGV[2])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'rate', tonumber(oldest[2]) + 60000 - now}
  end
end
local tpm = tonumber(ARGV[3])
local tokens = tonumber(ARGV[4])
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used > 0 and used + tokens > tpm then
    return {'tpm', 60000 - (now % 60000)}
  end
end

-- Every check passed: record and reserve.
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if tpm > 0 then
  redis.call('INCRBY', KEYS[2], tokens)
  redis.call('EXPIRE', KEYS[2], 120)
end
for _, z in ipairs(bands) do
  redis.call('ZADD', z, now, ARGV[1])
  redis.call('PEXPIRE', z, 61000)
end
for _, z in ipairs(windows) do
  redis.call('ZADD', z, now, ARGV[1])
  redis.call('PEXPIRE', z, 61000)
end
local remaining = nil
local parts = {ARGV[1]}
for i = 1, n do
  local o = (i - 1) * 9
  local limit = tonumber(B[o + 1])
  local reserve = tonumber(B[o + 2])
  if reserve > 0 then
    redis.call('HINCRBY', KEYS[5 + i], 'reserved', reserve)
    parts[#parts + 1] = KEYS[5 + i] .. '=' .. epochs[i] .. '=' .. B[o + 2]
  end
  if B[o + 6] == '1' then
    local left = limit - spent[i] - reserved[i] - reserve
    if remaining == nil or left < remaining then remaining = left end
  end
end
local member = ''
if #parts > 1 then
  member = table.concat(parts, '|')
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[12]), member)
end
local out = {'ok', remaining or 0, remaining and 1 or 0, looped, member}
for i = 1, n do out[#out + 1] = epochs[i] end
return out
