-- notifyq scheduler: adds a job scheduler's next iteration when its current
-- one is fetched (§11), as a BullMQ worker does, or every schedule stops.
-- ARGV: 1 base, 2 now ms, 3 scheduler id, 4 id of the fetched job,
--       5 next ms for a cron `pattern` (computed by the caller), '' for `every`.
-- Returns { next job id or '', 'added' | 'duplicated' | 'stale' | 'done' }:
-- stale = the scheduler is gone or the fetched job is not its pending
-- iteration; done = limit or endDate reached.
local base, now, sid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local kRepeat = base .. 'repeat'
local prev = rcall('ZSCORE', kRepeat, sid)
if not prev or ARGV[4] ~= 'repeat:' .. sid .. ':' .. prev then return { '', 'stale' } end
prev = tonumber(prev)
local sk = kRepeat .. ':' .. sid
local s = rcall('HMGET', sk, 'name', 'data', 'opts', 'every', 'pattern', 'tz', 'offset',
                'startDate', 'endDate', 'limit', 'ic')
local every, offset = tonumber(s[4]), tonumber(s[7])
local ic = tonumber(s[11]) or 1
if s[10] and ic >= tonumber(s[10]) then return { '', 'done' } end
-- As BullMQ's worker: no next iteration once the one fetched is past
-- endDate; the one fetched before it still adds the next, even if that one
-- falls after endDate.
if s[9] and now > tonumber(s[9]) then return { '', 'done' } end

local next_ms
if every then
  next_ms = prev + every
  if next_ms < now then
    -- Missed iterations are skipped: the first slot of the offset grid after now.
    local o = offset or 0
    next_ms = now - ((now - o) % every) + every
  end
  if not offset then
    offset = next_ms % every
    rcall('HSET', sk, 'offset', offset)
  end
else
  next_ms = tonumber(ARGV[5])
  if not next_ms then return redis.error_reply('scheduler: pattern needs next ms') end
end

local meta = queue_meta(base)
local next_id = 'repeat:' .. sid .. ':' .. string.format('%d', next_ms)
local jk = base .. next_id
if rcall('EXISTS', jk) == 1 then
  event(base, meta.maxlen, 'duplicated', 'jobId', next_id)
  return { next_id, 'duplicated' }
end
rcall('ZADD', kRepeat, next_ms, sid)
ic = rcall('HINCRBY', sk, 'ic', 1)
rcall('INCR', base .. 'id')

local delay = next_ms - now
if delay < 0 then delay = 0 end
local opts = {}
if s[3] then opts = cjson.decode(s[3]) end
local rep = { count = ic, offset = offset }
if every then rep.every = every else rep.pattern = s[5] end
if s[6] then rep.tz = s[6] end
if s[8] then rep.startDate = tonumber(s[8]) end
if s[9] then rep.endDate = tonumber(s[9]) end
if s[10] then rep.limit = tonumber(s[10]) end
opts['repeat'] = rep
opts.prevMillis = next_ms
opts.repeatJobKey = sid
opts.jobId = next_id
opts.timestamp = now
opts.delay = delay
local priority = tonumber(opts.priority) or 0
rcall('HSET', jk, 'name', s[1] or '', 'data', s[2] or '{}', 'opts', cjson.encode(opts),
      'timestamp', now, 'delay', delay, 'priority', priority, 'rjk', sid)
event(base, meta.maxlen, 'added', 'jobId', next_id, 'name', s[1] or '')
if delay > 0 then
  add_delayed(base, next_id, now + delay)
  event(base, meta.maxlen, 'delayed', 'jobId', next_id, 'delay', now + delay)
  mark_delayed(base)
else
  push_ready(base, next_id, priority, false)
  event(base, meta.maxlen, 'waiting', 'jobId', next_id)
  mark_ready(base, meta)
end
return { next_id, 'added' }
