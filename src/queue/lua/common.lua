-- SPDX-License-Identifier: MIT
-- notifyq: helpers prepended to every script of src/queue/lua at build time.
-- Conventions of all our scripts: KEYS[1] is the queue's meta key (so a
-- cluster routes the call to the queue's slot) and ARGV[1] the queue base key
-- "<prefix>:<queue>:"; other keys are built from the base, all inside the
-- same hash tag (BULLMQ-LAYOUT.md §2). Times come from the caller's clock.
local rcall = redis.call
-- Numbers handed to redis.call are formatted with "%.14g", which is an
-- eighth of Redis's time in the work script: hot paths pass the strings
-- they were given (ARGV, hash fields) instead of numbers made from them.
local DEFAULT_MAXLEN = '10000'
local PRIO_SHIFT = 4294967296 -- 2^32: prioritized score = priority * 2^32 + seq
local DELAY_SHIFT = 4096      -- delayed score = due_ms * 4096 + seq

-- Every event is capped, so no separate XTRIM is needed (§10).
local function event(base, maxlen, ...)
  rcall('XADD', base .. 'events', 'MAXLEN', '~', maxlen, '*', 'event', ...)
end

-- Calls cmd with key (nil: none) followed by every item of list, in chunks
-- small enough for unpack().
local function bulk(cmd, key, list)
  local n = #list
  for i = 1, n, 4000 do
    if key then
      rcall(cmd, key, unpack(list, i, math.min(i + 3999, n)))
    else
      rcall(cmd, unpack(list, i, math.min(i + 3999, n)))
    end
  end
end

-- Queue state that decides whether the "jobs ready" marker may be written.
local function queue_meta(base)
  local m = rcall('HMGET', base .. 'meta', 'paused', 'concurrency', 'max', 'duration',
                  'opts.maxLenEvents')
  return { paused = m[1] ~= false, concurrency = tonumber(m[2]), max = tonumber(m[3]),
           duration = tonumber(m[4]),
           maxlen = m[5] and string.match(m[5], '^%d+$') or DEFAULT_MAXLEN,
           maxlen_set = m[5] ~= false }
end

local function is_maxed(base, meta)
  return meta.concurrency ~= nil and rcall('LLEN', base .. 'active') >= meta.concurrency
end

-- Marker "0": jobs can run now; never while paused or at global concurrency.
local function mark_ready(base, meta)
  if not meta.paused and not is_maxed(base, meta) then
    rcall('ZADD', base .. 'marker', '0', '0')
  end
end

-- Marker "1" = due time of the earliest delayed job, written even when paused.
local function mark_delayed(base)
  local first = rcall('ZRANGE', base .. 'delayed', 0, 0, 'WITHSCORES')
  if first[2] then
    rcall('ZADD', base .. 'marker', math.floor(tonumber(first[2]) / DELAY_SHIFT), '1')
  end
end

-- Score of a job due at due_ms: FIFO within one millisecond (§6).
local function delayed_score(base, due_ms)
  local lo = due_ms * DELAY_SHIFT
  local last = rcall('ZREVRANGEBYSCORE', base .. 'delayed', lo + DELAY_SHIFT - 1, lo,
                     'WITHSCORES', 'LIMIT', 0, 1)
  if last[2] then
    return math.min(tonumber(last[2]) + 1, lo + DELAY_SHIFT - 1)
  end
  return lo
end

local function add_delayed(base, id, due_ms)
  rcall('ZADD', base .. 'delayed', delayed_score(base, due_ms), id)
end

-- A ready job at the back of its queue (runs after those already waiting).
local function push_ready(base, id, priority, lifo)
  if priority > 0 then
    local seq = rcall('INCR', base .. 'pc')
    rcall('ZADD', base .. 'prioritized', priority * PRIO_SHIFT + seq % PRIO_SHIFT, id)
  elseif lifo then
    rcall('RPUSH', base .. 'wait', id)
  else
    rcall('LPUSH', base .. 'wait', id)
  end
end

-- A job put back so that it runs next (stalled, returned, rate-limited).
local function push_front(base, id, priority)
  if priority > 0 then
    rcall('ZADD', base .. 'prioritized', priority * PRIO_SHIFT, id)
  else
    rcall('RPUSH', base .. 'wait', id)
  end
end

-- Deletes a job's own keys (not its membership in sets/lists), with the
-- foreign value fail_foreign kept aside.
local function delete_job_keys(base, id)
  local jk = base .. id
  rcall('DEL', jk, jk .. ':logs', jk .. ':dependencies', jk .. ':processed', jk .. ':failed',
        jk .. ':unsuccessful', jk .. ':lock', jk .. ':foreign')
end

-- Whether r, a redis.pcall result, is Redis refusing a command on a key of
-- another type: a job key that someone overwrote with a string, a list...
-- Redis applies a script's writes up to an error, so the first command on a
-- job's hash goes through pcall and is checked with this before anything
-- else is written for that job.
local function is_wrongtype(r)
  return type(r) == 'table' and type(r.err) == 'string' and string.find(r.err, 'WRONGTYPE', 1, true) ~= nil
end

-- Raises the error of a pcall result that is no WRONGTYPE, as redis.call would.
local function check_reply(r)
  if type(r) == 'table' and r.err then error(r) end
  return r
end

-- The type of a job's key when it is not a hash ('none' for no key), else nil.
local function foreign_type(jk)
  local t = rcall('TYPE', jk)
  t = type(t) == 'table' and t.ok or t
  if t == 'hash' then return nil end
  return t
end

-- A job whose key holds no hash cannot run, and no script must trip on it
-- again: the value is kept aside under "<key>:foreign" (deleted with the
-- job), and the id ends in failed with a reason, as a readable job. Not its
-- set or list memberships, nor its lock: the caller handles those.
local function fail_foreign(base, id, maxlen, now_s, prev)
  local jk = base .. id
  local kind = foreign_type(jk) or 'hash'
  local reason = 'job key held a ' .. kind .. ', not a job hash'
  if kind ~= 'none' and kind ~= 'hash' then
    rcall('RENAME', jk, jk .. ':foreign')
    reason = reason .. '; kept as ' .. jk .. ':foreign'
  end
  rcall('HSET', jk, 'name', '', 'data', '{}', 'opts', '{}', 'timestamp', now_s,
        'failedReason', reason, 'finishedOn', now_s)
  rcall('ZADD', base .. 'failed', now_s, id)
  event(base, maxlen, 'failed', 'jobId', id, 'failedReason', reason, 'prev', prev)
  return reason
end

-- A deduplication key without TTL lives until its job ends; one with a TTL
-- just expires (§8.1).
local function release_dedup(base, id, deid)
  if not deid or deid == '' then return end
  local dk = base .. 'de:' .. deid
  if rcall('GET', dk) == id and rcall('PTTL', dk) == -1 then
    rcall('DEL', dk)
  end
end

-- Trims a finished set by a retention spec "<count>:<age_ms>:<limit>".
local function apply_retention(base, set, spec, now)
  local count, age, limit = string.match(spec, '^(-?%d+):(%d+):(%d+)$')
  if not count then return end
  count, age, limit = tonumber(count), tonumber(age), tonumber(limit)
  local key = base .. set
  if age > 0 then
    local old = rcall('ZRANGEBYSCORE', key, '-inf', now - age, 'LIMIT', 0, limit)
    if #old > 0 then
      for _, id in ipairs(old) do delete_job_keys(base, id) end
      bulk('ZREM', key, old)
    end
  end
  if count >= 0 then
    local old = rcall('ZREVRANGE', key, count, -1)
    if #old > 0 then
      for _, id in ipairs(old) do delete_job_keys(base, id) end
      rcall('ZREMRANGEBYRANK', key, 0, -(count + 1))
    end
  end
end

-- Earliest delayed due time in ms, or nil.
local function next_delayed(base)
  local first = rcall('ZRANGE', base .. 'delayed', 0, 0, 'WITHSCORES')
  if first[2] then return math.floor(tonumber(first[2]) / DELAY_SHIFT) end
  return nil
end

-- Emits "drained" when nothing is left to run or running.
local function maybe_drained(base, meta)
  if rcall('LLEN', base .. 'wait') == 0 and rcall('LLEN', base .. 'active') == 0 and
     rcall('ZCARD', base .. 'prioritized') == 0 then
    event(base, meta.maxlen, 'drained')
  end
end

-- Scheduler iterations are never given a deferred failure for stalling.
local function is_scheduler_iteration(base, jk)
  local rjk = rcall('HGET', jk, 'rjk')
  if not rjk then return false end
  return rcall('EXISTS', base .. 'repeat:' .. rjk) == 1 or
         rcall('ZSCORE', base .. 'repeat', rjk) ~= false
end
