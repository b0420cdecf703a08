/**
 * The sliding window of sliding-window.ts, on a hash per key (field: bucket number, value: count)
 * that every replica shares. The time is Redis's (ARGV[1] empty), so replicas whose clocks differ
 * count into the same buckets. One call serves every key a process gathered in one event-loop
 * turn; per key five ARGV values from ARGV[5] on: hits, the largest lease wanted, the limit, and a
 * bucket and count of unused leased units to give back first. Per key it answers the hits granted
 * (the first ones, in order), the units leased, what the window held before them, and a wait
 * (refused: ms until a hit fits; allowed: ms until the oldest counted request leaves); then the
 * current bucket and the ms left in it.
 */
export const TAKE = `
local now
if ARGV[1] == '' then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local bucketMs = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
local share = tonumber(ARGV[4])
local clockBucket = math.floor(now / bucketMs)
local answer = {}
local latest = clockBucket
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 4 + (i - 1) * 5
  local hits = tonumber(ARGV[base + 1])
  local cap = tonumber(ARGV[base + 2])
  local limit = tonumber(ARGV[base + 3])
  local givenBucket = ARGV[base + 4]
  local given = tonumber(ARGV[base + 5])
  local fields = redis.call('HGETALL', key)
  -- Should the clock step back, count into the newest bucket, as the in-process window does.
  local current = clockBucket
  for j = 1, #fields, 2 do
    local bucket = tonumber(fields[j])
    if bucket > current then current = bucket end
  end
  if current > latest then latest = current end
  local oldest = current - span + 1
  local counts = {}
  local total = 0
  local stale = {}
  for j = 1, #fields, 2 do
    local bucket = tonumber(fields[j])
    local count = tonumber(fields[j + 1])
    if bucket < oldest then
      stale[#stale + 1] = fields[j]
    else
      if given > 0 and fields[j] == givenBucket then
        local back = math.min(given, count)
        count = count - back
        if count > 0 then redis.call('HSET', key, fields[j], count) else stale[#stale + 1] = fields[j] end
      end
      counts[bucket] = count
      total = total + count
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  local room = limit - total
  local granted = math.min(hits, math.max(0, room))
  local leased = 0
  -- A lease is no larger than what the window held per bucket on average: a key asked a few times
  -- a minute leases nothing (nothing to give back), a busy one up to the cap.
  if granted == hits and cap > 0 then
    leased = math.max(0, math.min(cap, math.floor((room - hits) / share), math.floor(total / span)))
  end
  local taken = granted + leased
  if taken > 0 then
    counts[current] = (counts[current] or 0) + taken
    -- Formatted as an integer: Lua would print a large number as %.14g.
    redis.call('HINCRBY', key, string.format('%d', current), taken)
    redis.call('PEXPIRE', key, span * bucketMs)
  end
  local need = 1
  if granted < hits then need = total + granted - limit + 1 end
  local wait = 0
  local freed = 0
  for bucket = oldest, current do
    freed = freed + (counts[bucket] or 0)
    if freed >= need then
      wait = (bucket + span) * bucketMs - now
      break
    end
  end
  local at = (i - 1) * 4
  answer[at + 1] = granted
  answer[at + 2] = leased
  answer[at + 3] = total
  answer[at + 4] = wait
end
answer[#KEYS * 4 + 1] = latest
answer[#KEYS * 4 + 2] = (latest + 1) * bucketMs - now
return answer
`;
