-- Settle (or release) one request exactly once: drop its reservations, add its actual usage,
-- and signal every ladder step the new total crossed (one event per budget, period and step).
-- The request's usage events (ARGV[6+3n..]) are appended to the usage stream in the same atomic
-- step (one round trip; the ledger's event and the counter change can't part), even when the
-- request id was settled already (the ledger writer is idempotent by request id).
--
-- KEYS[1] settled marker  KEYS[2] alerts stream  KEYS[3] the workspace's live reservations
-- KEYS[3+i] counter hash of budget i  KEYS[4+n] the usage stream (only read with events)
-- ARGV[1] marker ttl s  ARGV[2] workspace id  ARGV[3] request id
-- ARGV[4] the reservation member admit returned ('' when nothing was reserved)
-- ARGV[5] numbers as little-endian doubles (`struct`: no string parsing in Lua): n, then per
--   budget: actual, k ladder steps, the k thresholds (in the ladder's order)
-- ARGV[6] space-separated words, read only when a ladder step is crossed: per budget its
--   budget id, period key, limit, then its k step labels
-- ARGV[7 + 3(i-1)] epoch seen at admit, ARGV[8 + 3(i-1)] minus the reserve ('' when nothing
--   was reserved), ARGV[9 + 3(i-1)] the actual usage ('' when none), as decimal strings
-- ARGV[7+3n..] usage events, one JSON document each (stream field `e`)
-- Returns 1 when settled now, 0 when this request id was already settled.
local call, unpack_d = redis.call, struct.unpack
local packed = ARGV[5]
local n, pos = unpack_d('<d', packed)
local first = 7 + 3 * n
for j = first, #ARGV do
  call('XADD', KEYS[4 + n], '*', 'e', ARGV[j])
end
if not call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 0 end
-- Our reservations are still held unless they expired and admit dropped them already.
local held = ARGV[4] ~= '' and call('ZREM', KEYS[3], ARGV[4]) == 1
local words = nil -- ARGV[6], split the first time a step is crossed
local skip = 0 -- words before budget i's
for i = 1, n do
  local k = KEYS[3 + i]
  local o = 4 + 3 * i
  local actual, steps
  actual, steps, pos = unpack_d('<dd', packed, pos)
  local unread = steps -- thresholds left to skip
  local epoch = call('HGET', k, 'init')
  -- A counter that vanished (Redis flushed) is left alone: the ledger carries this usage and
  -- the rebuild reads it. A counter rebuilt since admit holds none of our reservation.
  if epoch then
    if held and ARGV[o + 1] ~= '' and epoch == ARGV[o] then
      call('HINCRBY', k, 'reserved', ARGV[o + 1])
    end
    if ARGV[o + 2] ~= '' then
      local after = call('HINCRBY', k, 'spent', ARGV[o + 2])
      local before = after - actual
      for s = 1, steps do
        local th
        th, pos = unpack_d('<d', packed, pos)
        if before < th and after >= th then
          if not words then
            words = {}
            for w in string.gmatch(ARGV[6], '%S+') do words[#words + 1] = w end
          end
          local step = words[skip + 3 + s]
          if call('HSETNX', k, 'a' .. step, 1) == 1 then
            call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', 'kind', 'ladder',
              'workspace_id', ARGV[2], 'budget_id', words[skip + 1], 'period', words[skip + 2],
              'step', step, 'spent', after, 'limit', words[skip + 3], 'request_id', ARGV[3])
          end
        end
      end
      unread = 0
    end
  end
  pos = pos + 8 * unread
  skip = skip + 3 + steps
end
return 1
