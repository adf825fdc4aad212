-- notifyq work: finish K jobs, then fetch up to N jobs, in one call (§8.2, §8.3).
-- ARGV: 1 base, 2 now_ms, 3 lock_ms, 4 token prefix, 5 first token seq,
--       6 N (0 = finish only), 7 worker name or '', 8 limiter max (0 none),
--       9 limiter duration ms, 10 K, then K finishes of 11 fields each:
--       id, token, kind, attemptsMade after, deid or '', p1, p2, p3, p4,
--       flags: 'p' the job is a flow child (has parentKey), 'r' the finish
--       was sent before in a call whose reply was lost, 'pr' both, or empty
--       progress JSON to store (kinds F, P, D, W, L) or '' to leave it
-- kinds: C completed (p1 returnvalue, p2 retention)
--        F failed, attempts exhausted (p1 reason, p2 stacktrace, p3 retention,
--          p4 'd' = drop defa)            P failed permanently (same, no
--          retries-exhausted event)
--        D retry later (p1 reason, p2 stacktrace, p3 delay ms)
--        W retry now (p1 reason, p2 stacktrace, p3 priority, p4 'l' = lifo)
--        L rate limited, no attempt spent (p3 delay ms, p4 '1' = engage limiter)
--        R returned unrun, no attempt spent (p3 priority)
-- Returns { codes, jobs, status, value, foreign }: codes[i] is 0 or BullMQ's
-- error for finish i (-1 no job, -2 no lock, -6 lock of another token, -3 not
-- active), or -7: the job's key held no hash, the job failed (fail_foreign),
-- or 1: a finish sent again ('r') that the job shows applied already;
-- jobs is a flat list id, token, HGETALL...; status 0 fetched/none asked,
-- 1 nothing to run (value = next delayed due ms or 0), 2 rate limited (value =
-- ms left), 3 paused, 4 at global concurrency; foreign is a flat list id,
-- reason of the jobs fetched or promoted that failed so.
local base = ARGV[1]
local now = tonumber(ARGV[2])
local now_s = ARGV[2]
local meta = queue_meta(base)
local kActive = base .. 'active'

local finished = {}            -- ids whose lock was released (SREM stalled)
local unlocked = {}            -- their lock keys, deleted in one call
local settled = { completed = {}, failed = {} } -- ZADD pairs per set
local specs = { completed = {}, failed = {} }   -- distinct retention specs, in order
local ready_changed, delayed_changed = false, false
local ended = 0                -- jobs completed or failed for good
local foreign = {}             -- id, reason of fetched/promoted jobs failed for their key

local function settle(id, set, spec)
  ended = ended + 1
  if spec == '0' then
    delete_job_keys(base, id)
    return
  end
  local z = settled[set]
  z[#z + 1] = now_s
  z[#z + 1] = id
  if spec ~= '' and not specs[set][spec] then
    specs[set][spec] = true
    specs[set][#specs[set] + 1] = spec
  end
end

-- Many finishes against a short active list: one LRANGE, then the list is
-- rewritten once, instead of an LREM per job.
local active_count      -- id -> occurrences still in active, when batching
local active_list
local function batch_active(k)
  if k < 8 then return end
  if rcall('LLEN', kActive) > k * 8 then return end
  active_count = {}
  active_list = rcall('LRANGE', kActive, 0, -1)
  for _, id in ipairs(active_list) do
    active_count[id] = (active_count[id] or 0) + 1
  end
end

local function take_from_active(id)
  if not active_count then return rcall('LREM', kActive, -1, id) end
  local c = active_count[id]
  if not c or c == 0 then return 0 end
  active_count[id] = c - 1
  return 1
end

-- Writes back the active list without the finished ids, order kept.
local function rewrite_active()
  if not active_count or #finished == 0 then return end
  local drop = {}
  for _, id in ipairs(finished) do drop[id] = (drop[id] or 0) + 1 end
  local keep = {}
  for i = #active_list, 1, -1 do -- from the tail, as LREM -1 does
    local id = active_list[i]
    if drop[id] and drop[id] > 0 then drop[id] = drop[id] - 1 else keep[#keep + 1] = id end
  end
  rcall('DEL', kActive)
  if #keep > 0 then bulk('LPUSH', kActive, keep) end
end

local function check_lock(id, token)
  local jk = base .. id
  local lock = rcall('GET', jk .. ':lock')
  if lock ~= token then
    if rcall('EXISTS', jk) == 0 then return -1 end
    return lock and -6 or -2
  end
  if take_from_active(id) == 0 then
    return rcall('EXISTS', jk) == 0 and -1 or -3
  end
  unlocked[#unlocked + 1] = jk .. ':lock'
  finished[#finished + 1] = id
  return 0
end

-- ---- deduplication keepLastIfActive -------------------------------------

-- A job added under a dedup id while that id's job was active waits as
-- "dn:<id>" (BullMQ's producer writes it, the last add wins); the active
-- job's end creates it, owning the dedup key, as BullMQ's moveToFinished
-- does. Its id is the counter's next value (always taken) or its own jobId.
local function requeue_dedup_next(deid)
  local nk = base .. 'dn:' .. deid
  local d = rcall('HMGET', nk, 'name', 'data', 'opts', 'pk', 'pd', 'pdk', 'rjk', 'jid')
  if not d[3] then return end
  local id = d[8] or tostring(rcall('INCR', base .. 'id'))
  if d[8] then rcall('INCR', base .. 'id') end
  local ok, opts = pcall(cjson.decode, d[3])
  if not ok or type(opts) ~= 'table' then opts = {} end
  local de = type(opts.de) == 'table' and opts.de or {}
  local ttl = tonumber(de.ttl) or 0
  if ttl > 0 and not de.keepLastIfActive then
    rcall('SET', base .. 'de:' .. deid, id, 'PX', ttl)
  else
    rcall('SET', base .. 'de:' .. deid, id)
  end
  local delay, priority = tonumber(opts.delay) or 0, tonumber(opts.priority) or 0
  local fields = { 'name', d[1] or '', 'data', d[2] or '{}', 'opts', d[3], 'timestamp', now_s,
                   'delay', delay, 'priority', priority }
  local extra = { 'parentKey', d[4], 'parent', d[5], 'rjk', d[7], 'deid', de.id or false }
  for i = 1, #extra, 2 do
    if extra[i + 1] then
      fields[#fields + 1] = extra[i]
      fields[#fields + 1] = tostring(extra[i + 1])
    end
  end
  rcall('HSET', base .. id, unpack(fields))
  event(base, meta.maxlen, 'added', 'jobId', id, 'name', d[1] or '')
  if delay > 0 then
    add_delayed(base, id, now + delay)
    event(base, meta.maxlen, 'delayed', 'jobId', id, 'delay', now + delay)
    delayed_changed = true
  else
    push_ready(base, id, priority, opts.lifo == true)
    event(base, meta.maxlen, 'waiting', 'jobId', id)
    ready_changed = true
  end
  if d[6] then rcall('SADD', d[6], base .. id) end
  rcall('DEL', nk)
end

-- A job that ended for good frees its dedup key, and lets the job kept
-- while it was active go on.
local function end_dedup(id, deid)
  if deid == '' then return end
  release_dedup(base, id, deid)
  requeue_dedup_next(deid)
end

-- ---- flows: a child that ends updates its parent (§12) -------------------

local function parent_of(jk)
  local h = rcall('HMGET', jk, 'parentKey', 'parent')
  if not h[1] or not h[2] then return nil end
  local ok, p = pcall(cjson.decode, h[2])
  if not ok or type(p) ~= 'table' or p.id == nil or type(p.queueKey) ~= 'string' then
    return nil
  end
  local id = tostring(p.id)
  return { key = p.queueKey .. ':' .. id, id = id, base = p.queueKey .. ':', flags = p }
end

-- The parent leaves waiting-children for wait, prioritized or delayed.
local function wake_parent(par)
  local pmeta = queue_meta(par.base)
  local h = rcall('HMGET', par.key, 'priority', 'delay')
  local priority, delay = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  if delay > 0 then
    add_delayed(par.base, par.id, now + delay)
    event(par.base, pmeta.maxlen, 'delayed', 'jobId', par.id, 'delay', now + delay)
    mark_delayed(par.base)
    return
  end
  if priority > 0 then
    push_ready(par.base, par.id, priority, false)
  else
    rcall('RPUSH', par.base .. 'wait', par.id)
  end
  event(par.base, pmeta.maxlen, 'waiting', 'jobId', par.id, 'prev', 'waiting-children')
  mark_ready(par.base, pmeta)
end

local function release_parent(par, even_if_pending)
  if foreign_type(par.key) then return end -- gone, or no job hash
  if not even_if_pending and rcall('SCARD', par.key .. ':dependencies') > 0 then return end
  if rcall('ZREM', par.base .. 'waiting-children', par.id) == 1 then wake_parent(par) end
end

local function child_completed(jk, rv)
  local par = parent_of(jk)
  if par and rcall('SREM', par.key .. ':dependencies', jk) == 1 then
    rcall('HSET', par.key .. ':processed', jk, rv)
    release_parent(par, false)
  end
end

-- fpof fails the parent, cpof lets it go on, idof/rdof drop the dependency;
-- without a flag the parent keeps waiting for its children, as in BullMQ.
local function child_failed(jk, reason)
  local par = parent_of(jk)
  if not par then return end
  local f = par.flags
  if not (f.fpof or f.cpof or f.idof or f.rdof) then return end
  if rcall('SREM', par.key .. ':dependencies', jk) == 0 then return end
  if f.fpof then
    rcall('ZADD', par.key .. ':unsuccessful', now, jk)
    if foreign_type(par.key) then return end
    local from = rcall('ZREM', par.base .. 'waiting-children', par.id) == 1
    if not from and rcall('ZREM', par.base .. 'delayed', par.id) == 1 then
      rcall('HSET', par.key, 'delay', 0)
      from = true
    end
    if from or not rcall('ZSCORE', par.base .. 'failed', par.id) then
      rcall('HSET', par.key, 'defa', 'child ' .. jk .. ' failed')
    end
    if from then wake_parent(par) end
  elseif f.cpof then
    rcall('HSET', par.key .. ':failed', jk, reason)
    release_parent(par, true)
  else
    if f.idof then rcall('HSET', par.key .. ':failed', jk, reason) end
    release_parent(par, false)
  end
end

-- The first write to a finished job's hash: false (and the job failed)
-- when its key holds something else, which nothing before has written to.
local function write_job(id, jk, ...)
  local r = redis.pcall('HSET', jk, ...)
  if not is_wrongtype(r) then
    check_reply(r)
    return true
  end
  fail_foreign(base, id, meta.maxlen, now_s, 'active')
  ended = ended + 1
  return false
end

-- A finish sent again after its call's reply was lost, refused with code:
-- whether the lost call applied it. attemptsMade moves only by finishes, so
-- a job that reached this finish's count and the state it leads to has had
-- it; a job gone (-1) had it when this finish removes it (a retention spec).
-- A rate-limited finish spends no attempt: it shows as a delayed job.
local function applied_before(id, kind, atm, spec, code)
  local jk = base .. id
  if kind == 'R' then return false end
  if kind == 'L' then return rcall('ZSCORE', base .. 'delayed', id) ~= false end
  local final = kind == 'C' or kind == 'F' or kind == 'P'
  if code == -1 then return final and spec ~= '' end
  local made = redis.pcall('HGET', jk, 'atm')
  if type(made) ~= 'string' or tonumber(made) < tonumber(atm) then return false end
  if kind == 'C' then return rcall('ZSCORE', base .. 'completed', id) ~= false end
  if final then return rcall('ZSCORE', base .. 'failed', id) ~= false end
  return true -- retried: it may have been fetched again since
end

local function finish_one(a)
  local id, kind, atm = ARGV[a], ARGV[a + 2], ARGV[a + 3]
  local p1, p2, p3, p4 = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  local flags = ARGV[a + 9]
  local child = flags == 'p' or flags == 'pr'
  local code = check_lock(id, ARGV[a + 1])
  if code ~= 0 then
    if (flags == 'r' or flags == 'pr') and
       applied_before(id, kind, atm, kind == 'C' and p2 or p3, code) then
      return 1
    end
    return code
  end
  local jk = base .. id
  local progress = ARGV[a + 10]
  if progress ~= '' and kind ~= 'C' and kind ~= 'R' then
    rcall('HSET', jk, 'progress', progress)
    event(base, meta.maxlen, 'progress', 'jobId', id, 'data', progress)
  end
  if kind == 'C' then
    if not write_job(id, jk, 'returnvalue', p1, 'finishedOn', now_s, 'atm', atm) then return -7 end
    end_dedup(id, ARGV[a + 4])
    event(base, meta.maxlen, 'completed', 'jobId', id, 'returnvalue', p1, 'prev', 'active')
    if child then child_completed(jk, p1) end
    settle(id, 'completed', p2)
  elseif kind == 'F' or kind == 'P' then
    if not write_job(id, jk, 'failedReason', p1, 'stacktrace', p2, 'finishedOn', now_s,
                     'atm', atm) then
      return -7
    end
    end_dedup(id, ARGV[a + 4])
    if p4 == 'd' then rcall('HDEL', jk, 'defa') end
    event(base, meta.maxlen, 'failed', 'jobId', id, 'failedReason', p1, 'prev', 'active')
    if kind == 'F' then
      event(base, meta.maxlen, 'retries-exhausted', 'jobId', id, 'attemptsMade', atm)
    end
    if child then child_failed(jk, p1) end
    settle(id, 'failed', p3)
  elseif kind == 'D' or kind == 'L' then
    local delay = tonumber(p3)
    local ok
    if kind == 'D' then
      ok = write_job(id, jk, 'failedReason', p1, 'stacktrace', p2, 'atm', atm, 'delay', p3)
    else
      ok = write_job(id, jk, 'delay', p3)
    end
    if not ok then return -7 end
    if kind == 'L' and p4 == '1' then
      rcall('SET', base .. 'limiter', 9007199254740991, 'PX', delay)
    end
    add_delayed(base, id, now + delay)
    event(base, meta.maxlen, 'delayed', 'jobId', id, 'delay', now + delay)
    delayed_changed = true
  elseif kind == 'W' then
    if not write_job(id, jk, 'failedReason', p1, 'stacktrace', p2, 'atm', atm) then return -7 end
    push_ready(base, id, tonumber(p3) or 0, p4 == 'l')
    event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'active')
    ready_changed = true
  else -- 'R'
    push_front(base, id, tonumber(p3) or 0)
    event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'active')
    ready_changed = true
  end
  return 0
end

local function finish_all()
  local codes = {}
  local k = tonumber(ARGV[10])
  batch_active(k)
  for i = 1, k do
    codes[i] = finish_one(11 + (i - 1) * 11)
  end
  rewrite_active()
  if #finished > 0 then
    bulk('DEL', nil, unlocked)
    bulk('SREM', base .. 'stalled', finished)
  end
  for _, set in ipairs({ 'completed', 'failed' }) do
    if #settled[set] > 0 then
      bulk('ZADD', base .. set, settled[set])
      for _, spec in ipairs(specs[set]) do apply_retention(base, set, spec, now) end
    end
  end
  if delayed_changed then mark_delayed(base) end
  if ready_changed then mark_ready(base, meta) end
  return codes
end

local function promote_due()
  local due = rcall('ZRANGEBYSCORE', base .. 'delayed', 0, (now + 1) * DELAY_SHIFT - 1,
                    'LIMIT', 0, 1000)
  if #due == 0 then return end
  for _, id in ipairs(due) do
    local jk = base .. id
    local priority = redis.pcall('HGET', jk, 'priority')
    if is_wrongtype(priority) then
      foreign[#foreign + 1] = id
      foreign[#foreign + 1] = fail_foreign(base, id, meta.maxlen, now_s, 'delayed')
    else
      push_ready(base, id, tonumber(check_reply(priority)) or 0, false)
      rcall('HSET', jk, 'delay', 0)
      event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'delayed')
    end
  end
  bulk('ZREM', base .. 'delayed', due)
  mark_ready(base, meta)
end

-- How many jobs the limiter still allows (nil = no limiter), or the ms left.
local function limiter_room(max)
  local kLimiter = base .. 'limiter'
  local used = tonumber(rcall('GET', kLimiter) or 0)
  if used < max then return max - used, 0 end
  local ttl = rcall('PTTL', kLimiter)
  if ttl > 0 then return 0, ttl end
  rcall('DEL', kLimiter) -- a counter that lost its expiry must not block forever
  return max, 0
end

local function pop_ids(n)
  local ids = rcall('RPOP', base .. 'wait', n) or {}
  if #ids < n then
    local want = n - #ids
    local pz = rcall('ZPOPMIN', base .. 'prioritized', want)
    for i = 1, #pz, 2 do ids[#ids + 1] = pz[i] end
    if #pz / 2 < want then rcall('DEL', base .. 'pc') end
  end
  return ids
end

-- Locks one job for this worker and returns its hash with the fetch applied
-- (the writes come first, so the hash read back is the truth), and whether
-- it carries a deferred failure (looked up only when a limiter counts).
-- Returns nil for a job whose key holds no hash: it failed instead.
local function activate(id, token, lock_ms, name, limited)
  local jk = base .. id
  -- The first command on the job: a key of another type fails the job
  -- before anything is written for it. A garbled ats (not ours: workers
  -- write integers) restarts the count rather than fail the whole call.
  local ats = redis.pcall('HINCRBY', jk, 'ats', 1)
  if type(ats) == 'table' and ats.err then
    if is_wrongtype(ats) then
      foreign[#foreign + 1] = id
      foreign[#foreign + 1] = fail_foreign(base, id, meta.maxlen, now_s, 'waiting')
      return nil
    end
    rcall('HSET', jk, 'ats', '1')
  end
  rcall('SET', jk .. ':lock', token, 'PX', lock_ms)
  event(base, meta.maxlen, 'active', 'jobId', id, 'prev', 'waiting')
  if name ~= '' then
    rcall('HSET', jk, 'processedOn', now_s, 'pb', name)
  else
    rcall('HSET', jk, 'processedOn', now_s)
  end
  return rcall('HGETALL', jk), limited and rcall('HEXISTS', jk, 'defa') == 1
end

local function fetch(n)
  promote_due()
  local max = meta.max or tonumber(ARGV[8]) or 0
  if max > 0 then
    local room, ttl = limiter_room(max)
    if ttl > 0 then return {}, 2, ttl end
    n = math.min(n, room)
  end
  if meta.paused then return {}, 3, 0 end
  if meta.concurrency then
    local room = meta.concurrency - rcall('LLEN', kActive)
    if room <= 0 then return {}, 4, 0 end
    n = math.min(n, room)
  end
  local ids = pop_ids(n)
  if #ids == 0 then return {}, 1, next_delayed(base) or -1 end
  local jobs, counted, taken = {}, 0, {}
  local seq = tonumber(ARGV[5])
  for i, id in ipairs(ids) do
    local token = ARGV[4] .. string.format('%d', seq + i - 1)
    local h, defa = activate(id, token, ARGV[3], ARGV[7], max > 0)
    if h then
      if not defa then counted = counted + 1 end
      taken[#taken + 1] = id
      jobs[#jobs + 1] = id
      jobs[#jobs + 1] = token
      jobs[#jobs + 1] = h
    end
  end
  if #taken > 0 then bulk('LPUSH', kActive, taken) end
  if max > 0 and counted > 0 then
    local kLimiter = base .. 'limiter'
    if rcall('INCRBY', kLimiter, counted) == counted then
      local dur = tonumber(ARGV[9]) or 0 -- the worker's duration beats meta's
      if dur <= 0 then dur = meta.duration or 1000 end
      rcall('PEXPIRE', kLimiter, dur)
    end
  end
  -- Wakes the next idle worker (a chain), as BullMQ's fetch does, but only
  -- when something is left for it: a marker that wakes a worker to find an
  -- empty queue costs it a fetch and a wake-up per job on a quiet queue.
  if rcall('LLEN', base .. 'wait') > 0 or rcall('ZCARD', base .. 'prioritized') > 0 then
    rcall('ZADD', base .. 'marker', '0', '0')
  end
  return jobs, 0, 0
end

local codes = finish_all()
local n = tonumber(ARGV[6])
local jobs, status, value = {}, 0, 0
if n > 0 then
  jobs, status, value = fetch(n)
end
-- As BullMQ's moveToFinished: after a job ended, "drained" when nothing is
-- left; with fetch-next only if the fetch found nothing at all (-1).
if ended > 0 and (n == 0 or value == -1) then
  maybe_drained(base, meta)
end
if value == -1 then value = 0 end
-- Under a global concurrency, slots this call freed and did not take wake
-- a worker waiting on the marker (mark_ready writes none while maxed).
if meta.concurrency and #finished > 0 and
   (rcall('LLEN', base .. 'wait') > 0 or rcall('ZCARD', base .. 'prioritized') > 0) then
  mark_ready(base, meta)
end
return { codes, jobs, status, value, foreign }
