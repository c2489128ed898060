-- Admit one request: loop breaker, every budget on the chain, throttle bands, rate caps.
-- Atomic: either every reservation is made or nothing changes (except the loop counter and
-- alert events, which record the attempt itself).
--
-- KEYS[1] key rate window (zset)   KEYS[2] key tokens-per-minute counter
-- KEYS[3] loop counter             KEYS[4] alerts stream
-- KEYS[5] the workspace's live reservations (zset, score = expiry ms, member
--   "<request id>|<counter key without the workspace tag>=<epoch>=<amount>|..."): a reservation
--   never settled (a gateway died mid-call) is dropped after the ttl, when a budget would
--   otherwise refuse.
-- KEYS[5+i] counter hash of budget i, then the throttle window (zset) of each budget that has
-- a throttle band (threshold >= 0 and throttle rpm > 0), in chain order, then rate window j
--
-- Numbers come packed as little-endian doubles (`struct`, built into Redis' Lua): a string's
-- `tonumber` costs two `strtod`s inside Redis, and these checks read ~40 numbers a call.
-- ARGV[1] request id
-- ARGV[2] '<d' x 9: n budgets, rpm (<=0: none), tpm (<=0: none), token estimate, loop max
--   (<=0: off), loop window s, loop enforce (1/0), reservation ttl ms, m rate windows
-- ARGV[3] '<d' x 6 per budget: reserve, limit, hard (1/0), throttle threshold (-1: none),
--   throttle rpm, money (1/0)
-- ARGV[4] '<d' x m: the rate windows' limits (requests/minute caps set as `rpm` budgets)
-- ARGV[5] workspace id  ARGV[6] loop subject
-- ARGV[7] space-separated, 3 words per budget, read only to raise alerts on a refusal:
--   budget id, period key, ladder "step=threshold,..." (or "-")
-- ARGV[8 + 2(i-1)] budget i's reserve as a decimal string (what HINCRBY adds), ARGV[9 + 2(i-1)]
--   its counter key without the workspace tag (for the reservation member)
-- Returns {'ok', remaining (tightest money budget, after this reservation), has_money,
--          loop count, reservation member, epoch_1..epoch_n}
--        | {'missing', i...} | {'budget', i, spent, reserved, limit}
--        | {'throttle', i, retry_ms} | {'window', j, retry_ms} | {'rate', retry_ms}
--        | {'tpm', retry_ms} | {'loop', count}
local call, unpack_d, fmt = redis.call, struct.unpack, string.format
local t = call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n, rpm, tpm, tokens, loop_max, loop_window, loop_enforce, ttl, m =
  unpack_d('<ddddddddd', ARGV[2])

local RES, LIM, HARD, TH, TRPM, MONEY, ZKEY = {}, {}, {}, {}, {}, {}, {}
local pos = 1
local packed = ARGV[3]
local z = 5 + n -- throttle windows: only budgets with a throttle band have a key
for i = 1, n do
  RES[i], LIM[i], HARD[i], TH[i], TRPM[i], MONEY[i], pos = unpack_d('<dddddd', packed, pos)
  if TH[i] >= 0 and TRPM[i] > 0 then
    z = z + 1
    ZKEY[i] = KEYS[z]
  end
end

local spent, reserved, epochs = {}, {}, {}
local function read()
  local missing = nil
  for i = 1, n do
    local v = call('HMGET', KEYS[5 + i], 'init', 'spent', 'reserved')
    if not v[1] then
      missing = missing or {'missing'}
      missing[#missing + 1] = i
    else
      epochs[i] = v[1]
      spent[i] = (v[2] or 0) + 0
      reserved[i] = (v[3] or 0) + 0
    end
  end
  return missing
end
local missing = read()
if missing then return missing end

-- Drop expired reservations (rare: only after a gateway died mid-call). Their counters share
-- this workspace's hash slot, so touching them from here is cluster-safe.
local function purge()
  local expired = call('ZRANGEBYSCORE', KEYS[5], '-inf', fmt('%d', now), 'LIMIT', 0, 200)
  if #expired == 0 then return false end
  local tag = string.sub(KEYS[5], 1, -6) -- KEYS[5] is "<tag>:resv"
  for _, member in ipairs(expired) do
    for key, epoch, amount in string.gmatch(member, '|([^=|]+)=([^=|]+)=(%d+)') do
      -- Members written before the tag was left out carry the whole key.
      if string.sub(key, 1, 9) ~= 'alephant:' then key = tag .. key end
      if call('HGET', key, 'init') == epoch then
        call('HINCRBY', key, 'reserved', '-' .. amount)
      end
    end
  end
  call('ZREM', KEYS[5], unpack(expired))
  return true
end

local looped = 0
if loop_max > 0 then
  local c = call('INCR', KEYS[3])
  if c == 1 then call('EXPIRE', KEYS[3], fmt('%d', loop_window)) end
  if c > loop_max then
    looped = c
    if c == loop_max + 1 then
      call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'kind', 'loop',
        'workspace_id', ARGV[5], 'subject', ARGV[6], 'count', c, 'at_ms', fmt('%d', now))
    end
    if loop_enforce == 1 then return {'loop', c} end
  end
end

-- Hard stops first: a 402 tells the client not to retry, which beats a 429.
-- At the cap is refused; a call whose worst case could pass the cap is refused; a call that
-- reserves nothing (a zero-price model under a money budget) is never blocked.
local function over(i)
  local used, reserve, limit = spent[i] + reserved[i], RES[i], LIM[i]
  return HARD[i] == 1 and reserve > 0 and (used >= limit or used + reserve > limit)
end
local function in_band(i)
  return TH[i] >= 0 and TRPM[i] > 0 and spent[i] + reserved[i] >= TH[i]
end

-- Refused: the budget is full for this call, so the ladder reaches 100 %. Every step not yet
-- raised (e.g. 90 % when spend sits at 85 % and no call fits) is raised now, in order, each
-- once per period (the same HSETNX flags settle uses), then 100 %.
local function refuse(i)
  local cold, words = ARGV[7], {}
  for w in string.gmatch(cold, '%S+') do words[#words + 1] = w end
  local o = (i - 1) * 3
  local steps = {}
  for step in string.gmatch(words[o + 3] or '', '(%d+)=%d+') do
    if tonumber(step) < 100 then steps[#steps + 1] = step end
  end
  steps[#steps + 1] = '100'
  local limit = fmt('%d', LIM[i])
  for _, step in ipairs(steps) do
    if call('HSETNX', KEYS[5 + i], 'a' .. step, 1) == 1 then
      call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'kind', 'ladder',
        'workspace_id', ARGV[5], 'budget_id', words[o + 1], 'period', words[o + 2], 'step', step,
        'spent', fmt('%d', spent[i]), 'limit', limit, 'refused', 1, 'at_ms', fmt('%d', now))
    end
  end
  return {'budget', i, spent[i], reserved[i], LIM[i]}
end

local purged = false
for i = 1, n do
  local hit = over(i)
  if (hit or in_band(i)) and not purged then
    purged = true
    if purge() then
      missing = read()
      hit = over(i)
    end
  end
  if hit then return refuse(i) end
end

local old = nil -- now - 60 s, as the string the sliding windows are trimmed to
local function full(z, cap)
  old = old or fmt('%d', now - 60000)
  call('ZREMRANGEBYSCORE', z, '-inf', old)
  if call('ZCARD', z) >= cap then
    local oldest = call('ZRANGE', z, 0, 0, 'WITHSCORES')
    return oldest[2] + 60000 - now
  end
  return nil
end

local bands = {}
for i = 1, n do
  if in_band(i) then
    local retry = full(ZKEY[i], TRPM[i])
    if retry then return {'throttle', i, retry} end
    bands[#bands + 1] = ZKEY[i]
  end
end

if m > 0 then
  pos = 1
  for j = 1, m do
    local cap
    cap, pos = unpack_d('<d', ARGV[4], pos)
    local retry = full(KEYS[z + j], cap)
    if retry then return {'window', j, retry} end
    bands[#bands + 1] = KEYS[z + j]
  end
end

if rpm > 0 then
  local retry = full(KEYS[1], rpm)
  if retry then return {'rate', retry} end
end
if tpm > 0 then
  local used = (call('GET', KEYS[2]) or 0) + 0
  if used > 0 and used + tokens > tpm then
    return {'tpm', 60000 - (now % 60000)}
  end
end

-- Every check passed: record and reserve.
local now_s = fmt('%d', now)
if rpm > 0 then
  call('ZADD', KEYS[1], now_s, ARGV[1])
  call('PEXPIRE', KEYS[1], '61000')
end
if tpm > 0 then
  call('INCRBY', KEYS[2], fmt('%d', tokens))
  call('EXPIRE', KEYS[2], '120')
end
for _, z in ipairs(bands) do
  call('ZADD', z, now_s, ARGV[1])
  call('PEXPIRE', z, '61000')
end
local remaining = nil
local parts = {ARGV[1]}
for i = 1, n do
  local reserve = RES[i]
  if reserve > 0 then
    local o = 8 + 2 * (i - 1)
    call('HINCRBY', KEYS[5 + i], 'reserved', ARGV[o])
    parts[#parts + 1] = ARGV[o + 1] .. '=' .. epochs[i] .. '=' .. ARGV[o]
  end
  if MONEY[i] == 1 then
    local left = LIM[i] - spent[i] - reserved[i] - reserve
    if remaining == nil or left < remaining then remaining = left end
  end
end
local member = ''
if #parts > 1 then
  member = table.concat(parts, '|')
  call('ZADD', KEYS[5], fmt('%d', now + ttl), member)
end
local out = {'ok', remaining or 0, remaining and 1 or 0, looped, member}
for i = 1, n do out[#out + 1] = epochs[i] end
return out
