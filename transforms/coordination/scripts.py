"""The Lua scripts of the Redis coordination backend. Each runs atomically on the server, in
one round trip, on the server's clock (``TIME``): workers' clocks never enter the state.

Token buckets (a hash per bucket: ``level``, ``at``) refill continuously at ``rate`` units
per second up to ``capacity`` (one minute's worth), as ``core.limits.TokenBucket`` does in
one process. A missing key is a full bucket, so each key expires once it would be full
again: nothing is lost by the expiry and nothing stale lingers.

Breakers (a hash per provider: ``failures``, ``open_until``, ``probe_until``) follow
``core.limits.CircuitBreaker``: closed (no ``open_until``), open until ``open_until``,
then half-open, where the first worker to ask takes the probe for a lease (``probe_until``);
a success anywhere deletes the hash (closed). The hash expires ``keep_ms`` after its last
change (plus the open time), so a breaker of a job that went away does not linger.

A run's spend (a hash: ``spent``, ``born``) is created by the first call that spends, which
writes its own random token as ``born``. Every worker remembers the token it first saw:
another token, or none, later means the hash was lost and made anew (evicted, flushed, or
Redis restarted without its data), whatever order concurrent replies arrive in.
"""

from __future__ import annotations

__all__ = [
    "BREAKER_ADMIT",
    "BREAKER_FAILED",
    "BUCKET_GIVE",
    "BUCKET_TAKE",
    "SPEND_ADD",
    "SPEND_READ",
]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# The level of bucket KEYS[i] now: its stored level refilled since ``at``.
_LEVEL = """
local function level_of(key, capacity, rate)
  local state = redis.call('HMGET', key, 'level', 'at')
  local level, at = tonumber(state[1]), tonumber(state[2])
  if level == nil or at == nil then return capacity end
  return math.min(capacity, level + math.max(0, now - at) * rate)
end
local function store(key, level, capacity, rate)
  redis.call('HSET', key, 'level', tostring(level), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - level) / rate * 1000) + 1000)
end
"""

# KEYS: the buckets (requests, tokens: either or both). ARGV: per bucket, capacity, rate
# per second, amount. Takes the amounts from every bucket when all have room, and returns
# "0"; otherwise takes nothing and returns the seconds to wait (as text: Lua numbers become
# integers in replies). An amount over the capacity waits for a full bucket.
BUCKET_TAKE = (
    _NOW
    + _LEVEL
    + """
local wait, levels, amounts = 0, {}, {}
for i = 1, #KEYS do
  local capacity, rate = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local amount = math.min(tonumber(ARGV[3 * i]), capacity)
  local level = level_of(KEYS[i], capacity, rate)
  levels[i], amounts[i] = level, amount
  if amount > level then wait = math.max(wait, (amount - level) / rate) end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  store(KEYS[i], levels[i] - amounts[i], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]))
end
return '0'
"""
)

# KEYS[1]: a bucket. ARGV: capacity, rate per second, amount to give back (negative: take
# more, which may leave the bucket in debt). Returns the new level.
BUCKET_GIVE = (
    _NOW
    + _LEVEL
    + """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local level = math.min(capacity, level_of(KEYS[1], capacity, rate) + tonumber(ARGV[3]))
store(KEYS[1], level, capacity, rate)
return tostring(level)
"""
)

# KEYS[1]: a breaker. ARGV: probe lease (s), keep (ms). Returns "call" (closed, no failure
# counted), "call-failures" (closed, with failures a success must clear), "probe"
# (half-open, and this caller holds the probe now), "open" or "half-open" (refused: open, or
# another worker's probe is out).
BREAKER_ADMIT = (
    _NOW
    + """
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until', 'failures')
local open_until, probe_until = tonumber(state[1]), tonumber(state[2])
if open_until == nil then
  if state[3] then return 'call-failures' end
  return 'call'
end
if now < open_until then return 'open' end
if probe_until ~= nil and now < probe_until then return 'half-open' end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[1])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 'probe'
"""
)

# KEYS[1]: a breaker. ARGV: threshold, cooldown (s), open for at least (s; "" for none),
# keep (ms). Counts a failure; opens the circuit (for max(cooldown, open for)) when the
# count reaches the threshold, when asked to, or when a probe is out (the probe failed, or
# a call that started before the circuit opened failed during the probe). Returns the state.
BREAKER_FAILED = (
    _NOW
    + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until, probe_until = tonumber(state[1]), tonumber(state[2])
local open_for, keep = tonumber(ARGV[3]), tonumber(ARGV[4])
local probing = probe_until ~= nil and now < probe_until
if probing or failures >= tonumber(ARGV[1]) or open_for ~= nil then
  local cooldown = math.max(open_for or 0, tonumber(ARGV[2]))
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown))
  redis.call('HDEL', KEYS[1], 'probe_until')
  redis.call('PEXPIRE', KEYS[1], math.ceil(cooldown * 1000) + keep)
  return 'open'
end
if open_until ~= nil and now < open_until then
  keep = keep + math.ceil((open_until - now) * 1000)
end
redis.call('PEXPIRE', KEYS[1], keep)
if open_until == nil then return 'closed' end
if now < open_until then return 'open' end
return 'half-open'
"""
)

# KEYS[1]: a run's spend. ARGV: cost (USD), this call's token, ttl (s). Returns the total
# after adding the cost, and the token of the call that created the hash.
SPEND_ADD = """
redis.call('HSETNX', KEYS[1], 'born', ARGV[2])
local total = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {tostring(total), redis.call('HGET', KEYS[1], 'born')}
"""

# KEYS[1]: a run's spend. ARGV: ttl (s). Returns the total ("0" when nothing was spent) and
# the creator's token ("" when there is no hash).
SPEND_READ = """
local state = redis.call('HMGET', KEYS[1], 'spent', 'born')
if not state[2] then return {'0', ''} end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return {state[1] or '0', state[2]}
"""
