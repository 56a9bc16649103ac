"""The Lua scripts behind the shared limits: each check-and-charge is one atomic EVALSHA.

Redis runs a script to completion before any other command, so a script that reads every
counter of a call, decides, and charges them all cannot interleave with another daemon's:
N daemons at a limit of 50 admit 50, never 51. Each script receives every key it touches
in KEYS.

Times are seconds since `BASE` (2023-11-14), which keeps them near 1e8: a double then
resolves about 15 nanoseconds, far below a GCRA interval. A script reads Redis's own clock
(`TIME`) unless the caller passes a time (see `shared.py` for when it does).

Floats are returned and stored through `string.format('%.17g')`: Lua's own conversion keeps
14 digits, and a Lua number in a reply is truncated to an integer.

Keys of one scope (an account, or a key with its own limits):
  rpm, tpm   hash {tat, limit}: the GCRA bucket of requests / tokens per minute
  flight     sorted set: the scope's calls in flight, scored by the time their lease ends
  held       hash: call id -> its token estimate, and `_sum` of them (the reservation); `c:` call id -> the
             worst case of its cost, and `_cost` of them (what budgets hold for calls in flight)
  day, month hash {requests, tokens, cost}: committed usage of the current period (cost in picounits)
"""

from __future__ import annotations

BASE = 1_700_000_000
"""Seconds since the epoch at which script times start."""

_PRELUDE = """
local BASE = 1700000000
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return (tonumber(t[1]) - BASE) + tonumber(t[2]) / 1000000
end
local function num(x) return string.format('%.17g', x) end
-- A float tolerance far below one unit and above the rounding of times near 1e8.
local function tolerance(interval) return math.min(interval * 0.5, math.max(interval * 1e-6, 1e-6)) end

-- The bucket's TAT under `limit`; when the limit changed, the units used carry over.
local function bucket(key, limit, now)
  local v = redis.call('HMGET', key, 'tat', 'limit')
  local tat = tonumber(v[1]) or now
  local previous = tonumber(v[2])
  if previous and previous ~= limit and tat > now then tat = now + (tat - now) * previous / limit end
  return tat
end

local function store(key, tat, limit, now)
  redis.call('HSET', key, 'tat', num(tat), 'limit', limit)
  redis.call('PEXPIRE', key, math.max(1000, math.ceil((tat - now) * 1000) + 1000))
end

local function remaining(tat, now, limit, period)
  local interval = period / limit
  local left = math.floor((period - math.max(0, tat - now)) / interval + 1e-6)
  return math.max(0, math.min(limit, left))
end

-- Calls whose lease ran out (their daemon died): their slot and reservation go.
local function purge(flight, held, now)
  local gone = redis.call('ZRANGEBYSCORE', flight, '-inf', num(now))
  if #gone == 0 then return end
  local freed, costs = 0, 0
  for i = 1, #gone do
    freed = freed + (tonumber(redis.call('HGET', held, gone[i])) or 0)
    costs = costs + (tonumber(redis.call('HGET', held, 'c:' .. gone[i])) or 0)
    redis.call('HDEL', held, gone[i], 'c:' .. gone[i])
  end
  redis.call('HINCRBY', held, '_sum', -freed)
  redis.call('HINCRBY', held, '_cost', string.format('%d', -costs))
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', num(now))
end
"""

ADMIT = (
    _PRELUDE
    + """
-- KEYS, 6 per scope: rpm, tpm, flight, held, day, month
-- ARGV: now ('' = TIME), call id, token estimate, lease seconds, rate period seconds, worst-case cost, then 8
--       limits per scope (0 = none): requests_per_minute, tokens_per_minute, concurrent_requests,
--       requests_per_day, tokens_per_day, tokens_per_month, budget_per_day, budget_per_month
-- Returns {verdict, scope, limit index, retry after, state...}; verdict is ok | quota | budget |
-- concurrency | rate, and state holds per scope and per rate (requests, tokens): limit,
-- remaining, seconds until full (after the charge when admitted, before it when refused). An `ok`
-- ends with the tightest budget: what is left, its limit, its index (0 = no budget); a `budget`
-- refusal carries what was spent and held.
local now = clock(ARGV[1])
local id, estimate, lease, period = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local worst = tonumber(ARGV[6])
local scopes = #KEYS / 6
local function key(s, i) return KEYS[(s - 1) * 6 + i] end
local function limit(s, i) return tonumber(ARGV[6 + (s - 1) * 8 + i]) end

local tats = {}
local function state()
  local out = {}
  for s = 1, scopes do
    for r = 1, 2 do
      local value = limit(s, r)
      if value > 0 then
        local tat = tats[(s - 1) * 2 + r] or bucket(key(s, r), value, now)
        out[#out + 1] = value
        out[#out + 1] = remaining(tat, now, value, period)
        out[#out + 1] = num(math.max(0, tat - now))
      else
        out[#out + 1] = 0
        out[#out + 1] = 0
        out[#out + 1] = '0'
      end
    end
  end
  return out
end

-- 1. Quotas, then concurrency, scope by scope (the local limiter's order).
for s = 1, scopes do
  purge(key(s, 3), key(s, 4), now)
  local active = redis.call('ZCARD', key(s, 3))
  if limit(s, 4) > 0 or limit(s, 5) > 0 or limit(s, 6) > 0 then
    local reserved = tonumber(redis.call('HGET', key(s, 4), '_sum')) or 0
    local day = redis.call('HMGET', key(s, 5), 'requests', 'tokens')
    local month = tonumber(redis.call('HGET', key(s, 6), 'tokens')) or 0
    local used = {(tonumber(day[1]) or 0) + active, (tonumber(day[2]) or 0) + reserved, month + reserved}
    for i = 1, 3 do
      local value = limit(s, 3 + i)
      if value > 0 and used[i] >= value then return {'quota', s, 3 + i, '0'} end
    end
  end
  if limit(s, 7) > 0 or limit(s, 8) > 0 then
    -- Budgets: what was spent, the worst cases held for calls in flight, and this call's must fit.
    local held_cost = tonumber(redis.call('HGET', key(s, 4), '_cost')) or 0
    local spent = {tonumber(redis.call('HGET', key(s, 5), 'cost')) or 0, tonumber(redis.call('HGET', key(s, 6), 'cost')) or 0}
    for i = 1, 2 do
      local value = limit(s, 6 + i)
      if value > 0 and spent[i] + held_cost + worst > value then
        return {'budget', s, 6 + i, '0', num(spent[i] + held_cost)}
      end
    end
  end
  if limit(s, 3) > 0 and active >= limit(s, 3) then
    local out = {'concurrency', s, 3, '1'}
    for _, v in ipairs(state()) do out[#out + 1] = v end
    return out
  end
end

-- 2. Every rate of every scope: all must allow before any is charged.
local charges = {}
for s = 1, scopes do
  for r = 1, 2 do
    local value = limit(s, r)
    if value > 0 then
      local interval = period / value
      local cost = 1
      if r == 2 then cost = math.min(estimate, value) end
      local tat = bucket(key(s, r), value, now)
      local new_tat = math.max(tat, now) + cost * interval
      local overshoot = new_tat - now - period
      if overshoot > tolerance(interval) then
        local out = {'rate', s, r, num(overshoot)}
        for _, v in ipairs(state()) do out[#out + 1] = v end
        return out
      end
      charges[#charges + 1] = {s, r, new_tat, value}
    end
  end
end

-- 3. Charge: the rates, a concurrency slot and the reservation in every scope.
for _, c in ipairs(charges) do
  store(key(c[1], c[2]), c[3], c[4], now)
  tats[(c[1] - 1) * 2 + c[2]] = c[3]
end
local keep = math.ceil(lease * 2000)
local tightest = {-1, 0, 0}
for s = 1, scopes do
  redis.call('ZADD', key(s, 3), num(now + lease), id)
  redis.call('HSET', key(s, 4), id, estimate)
  redis.call('HINCRBY', key(s, 4), '_sum', estimate)
  if worst > 0 then
    redis.call('HSET', key(s, 4), 'c:' .. id, string.format('%d', worst))
    redis.call('HINCRBY', key(s, 4), '_cost', string.format('%d', worst))
  end
  redis.call('PEXPIRE', key(s, 3), keep)
  redis.call('PEXPIRE', key(s, 4), keep)
  for i = 1, 2 do
    local value = limit(s, 6 + i)
    if value > 0 then
      local held_cost = tonumber(redis.call('HGET', key(s, 4), '_cost')) or 0
      local spent = tonumber(redis.call('HGET', key(s, 4 + i), 'cost')) or 0
      local left = math.max(0, value - spent - held_cost)
      if tightest[1] < 0 or left < tightest[1] then tightest = {left, value, 6 + i} end
    end
  end
end
local out = {'ok', 0, 0, '0'}
for _, v in ipairs(state()) do out[#out + 1] = v end
out[#out + 1] = num(math.max(tightest[1], 0))
out[#out + 1] = num(tightest[2])
out[#out + 1] = tightest[3]
return out
"""
)

FINISH = (
    _PRELUDE
    + """
-- KEYS, 3 per scope: tpm, flight, held
-- ARGV: now, call id, tokens used minus the estimate, rate period, then per scope its tokens_per_minute (0 = none)
-- Idempotent: a call no longer in flight (finished, expired, or never admitted) changes nothing.
local now = clock(ARGV[1])
local id, delta, period = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for s = 1, #KEYS / 3 do
  local tpm, flight, held = KEYS[s * 3 - 2], KEYS[s * 3 - 1], KEYS[s * 3]
  if redis.call('ZREM', flight, id) == 1 then
    local estimate = tonumber(redis.call('HGET', held, id)) or 0
    local worst = redis.call('HGET', held, 'c:' .. id)
    redis.call('HDEL', held, id, 'c:' .. id)
    redis.call('HINCRBY', held, '_sum', -estimate)
    if worst then redis.call('HINCRBY', held, '_cost', '-' .. worst) end
    local value = tonumber(ARGV[4 + s])
    if value > 0 and delta ~= 0 then
      local tat = bucket(tpm, value, now)
      if delta > 0 then tat = math.max(tat, now) + delta * period / value else tat = tat + delta * period / value end
      store(tpm, tat, value, now)
    end
  end
end
return 1
"""
)

REFRESH = (
    _PRELUDE
    + """
-- KEYS, 2 per scope: flight, held.  ARGV: now, lease seconds, call id
-- A live daemon's heartbeat: its call keeps its slot for another lease.
local now, lease, id = clock(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local keep = math.ceil(lease * 2000)
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], 'XX', num(now + lease), id)
  redis.call('PEXPIRE', KEYS[i], keep)
  redis.call('PEXPIRE', KEYS[i + 1], keep)
end
return 1
"""
)

ADD_USAGE = """
-- KEYS, 2 per counter: the period counter, its period's `seeded` marker
-- ARGV, 4 per counter: requests, tokens, cost (picounits), expire at (unix seconds)
-- Committed usage from a daemon's ledger. A counter is only created once its period was
-- seeded from the ledger; otherwise its index is returned and the daemon seeds it (the
-- ledger already holds this usage, so nothing is lost and nothing counted twice).
local missing = {}
for i = 1, #KEYS / 2 do
  local counter, marker = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('EXISTS', counter) == 1 or redis.call('EXISTS', marker) == 1 then
    local a = (i - 1) * 4
    redis.call('HINCRBY', counter, 'requests', ARGV[a + 1])
    redis.call('HINCRBY', counter, 'tokens', ARGV[a + 2])
    redis.call('HINCRBY', counter, 'cost', ARGV[a + 3])
    redis.call('EXPIREAT', counter, ARGV[a + 4])
  else
    missing[#missing + 1] = i
  end
end
return missing
"""

SEED = """
-- KEYS: the period's `seeded` marker, then counters.  ARGV: expire at, mark (1 = set the
-- marker), then 3 per counter: requests, tokens, cost.
-- Sets a counter only when it is absent (NX): a counter that exists already holds what
-- other daemons added, and the ledger's totals must not overwrite it.
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local a = 3 * (i - 2) + 2
    redis.call('HSET', KEYS[i], 'requests', ARGV[a + 1], 'tokens', ARGV[a + 2], 'cost', ARGV[a + 3])
    redis.call('EXPIREAT', KEYS[i], ARGV[1])
  end
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], '1', 'NX')
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
end
return 1
"""

STATUS = (
    _PRELUDE
    + """
-- KEYS: rpm, tpm, flight, day, month.  ARGV: now, rate period, requests_per_minute, tokens_per_minute (0 = none)
-- Returns {rpm remaining, rpm seconds to full, tpm remaining, tpm seconds to full, in flight,
--          day requests, day tokens, month requests, month tokens, day cost, month cost}
local now, period = clock(ARGV[1]), tonumber(ARGV[2])
local out = {}
for r = 1, 2 do
  local value = tonumber(ARGV[2 + r])
  if value > 0 then
    local tat = bucket(KEYS[r], value, now)
    out[#out + 1] = remaining(tat, now, value, period)
    out[#out + 1] = num(math.max(0, tat - now))
  else
    out[#out + 1] = 0
    out[#out + 1] = '0'
  end
end
out[#out + 1] = redis.call('ZCOUNT', KEYS[3], '(' .. num(now), '+inf')
local day = redis.call('HMGET', KEYS[4], 'requests', 'tokens', 'cost')
local month = redis.call('HMGET', KEYS[5], 'requests', 'tokens', 'cost')
for _, v in ipairs({day[1], day[2], month[1], month[2]}) do out[#out + 1] = tonumber(v) or 0 end
out[#out + 1] = day[3] or '0'
out[#out + 1] = month[3] or '0'
return out
"""
)
