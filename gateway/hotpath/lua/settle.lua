-- Settle (or release) one request exactly once: drop its reservations, add its actual usage,
-- and signal every ladder step the new total crossed (one event per budget, period and step).
-- The request's usage events (ARGV[7..]) are appended to the usage stream in the same atomic
-- step (one round trip; the ledger's event and the counter change can't part), even when the
-- request id was settled already (the ledger writer is idempotent by request id).
--
-- KEYS[1] settled marker  KEYS[2] alerts stream  KEYS[3] the workspace's live reservations
-- KEYS[3+i] counter hash of budget i  KEYS[4+n] the usage stream (only read with events)
-- ARGV[1] marker ttl s  ARGV[2] n  ARGV[3] workspace id  ARGV[4] request id
-- ARGV[5] the budgets, space-separated, budget i from o = (i-1)*7: epoch seen at admit,
--   reserve, actual, limit, ladder "step=threshold,..." (or "-"), budget id, period key
-- ARGV[6] the reservation member admit returned ('' when nothing was reserved)
-- ARGV[7..] usage events, one JSON document each (stream field `e`)
-- Returns 1 when settled now, 0 when this request id was already settled.
local n = tonumber(ARGV[2])
for j = 7, #ARGV do
  redis.call('XADD', KEYS[4 + n], '*', 'e', ARGV[j])
end
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
-- ARGV[5] split on single spaces (a plain find: about half the cost of gmatch('%S+')).
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
local B = words(ARGV[5] or '')
-- The ladder "step=threshold,..." ("-": none) as (step, threshold) pairs, read with plain finds
-- (gmatch('(%d+)=(%d+)') cost ~2 us a budget, on every settle).
local function ladder(s)
  local pos, find, sub = 1, string.find, string.sub
  return function()
    local eq = pos and find(s, '=', pos, true)
    if not eq then return nil end
    local comma = find(s, ',', eq, true)
    local step, th = sub(s, pos, eq - 1), tonumber(sub(s, eq + 1, comma and comma - 1 or -1))
    pos = comma and comma + 1
    return step, th
  end
end
-- Our reservations are still held unless they expired and admit dropped them already.
local held = ARGV[6] ~= '' and redis.call('ZREM', KEYS[3], ARGV[6]) == 1
for i = 1, n do
  local k = KEYS[3 + i]
  local o = (i - 1) * 7
  local epoch = redis.call('HGET', k, 'init')
  -- A counter that vanished (Redis flushed) is left alone: the ledger carries this usage and
  -- the rebuild reads it. A counter rebuilt since admit holds none of our reservation.
  if epoch then
    local reserve = tonumber(B[o + 2])
    if held and reserve > 0 and epoch == B[o + 1] then
      redis.call('HINCRBY', k, 'reserved', -reserve)
    end
    local actual = tonumber(B[o + 3])
    if actual > 0 then
      local after = redis.call('HINCRBY', k, 'spent', actual)
      local before = after - actual
      for step, th in ladder(B[o + 5]) do
        if before < th and after >= th and redis.call('HSETNX', k, 'a' .. step, 1) == 1 then
          redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'kind', 'ladder',
            'workspace_id', ARGV[3], 'budget_id', B[o + 6], 'period', B[o + 7],
            'step', step, 'spent', after, 'limit', B[o + 4], 'request_id', ARGV[4])
        end
      end
    end
  end
end
return 1
