-- Store one event and announce it, atomically, in one round trip.
-- KEYS[1] epoch key, KEYS[2] the topic's stream, KEYS[3] the topic's channel,
-- KEYS[4] the id of the newest entry ever trimmed from the stream (for gap detection),
-- KEYS[5] the publish's idempotency key (holds the cursor it was stored under)
-- ARGV: maxlen, type, ts, data, new epoch (used when none exists), idle expiry ms,
-- idempotency window ms
--
-- A publish whose idempotency key is already set was stored before (a retry after a
-- timeout or a dropped connection): it returns that cursor and stores nothing.
local seen = redis.call('GET', KEYS[5])
if seen then
  return seen
end
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', KEYS[1], epoch)
end
local maxlen = tonumber(ARGV[1])
local id = redis.call('XADD', KEYS[2], '*', 't', ARGV[2], 'ts', ARGV[3], 'd', ARGV[4])
local len = redis.call('XLEN', KEYS[2])
-- Trim in steps (an eighth of maxlen at a time) and remember the last id removed, so a
-- resume from before it is answered with a gap rather than a silent hole.
if len > maxlen + math.max(1, math.floor(maxlen / 8)) then
  local excess = len - maxlen
  local rows = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', excess + 1)
  redis.call('XTRIM', KEYS[2], 'MINID', rows[excess + 1][1])
  redis.call('SET', KEYS[4], rows[excess][1])
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
local cursor = epoch .. ':' .. id
redis.call('SET', KEYS[5], cursor, 'PX', ARGV[7])
redis.call('PUBLISH', KEYS[3], cursor .. '\n' .. ARGV[2] .. '\n' .. ARGV[3] .. '\n' .. ARGV[4])
return cursor
