-- notifyq add: one job, standard, prioritized or delayed (§8.1).
-- ARGV: 1 base, 2 custom id or '', 3 name, 4 data JSON, 5 opts JSON,
--       6 timestamp ms, 7 delay ms, 8 priority, 9 lifo ('1'),
--       10 dedup id or '', 11 dedup ttl ms (0 = until the job ends),
--       12 dedup extend ('1'), 13 dedup replace ('1').
-- Returns { job id, 'added' | 'duplicated' | 'deduplicated' }; for the last
-- two the id is the existing job's. A new id whose key holds something else
-- than a hash (a foreign write) is an error, before anything is written.
local base = ARGV[1]
local kMeta = base .. 'meta'
local meta = queue_meta(base)
if not meta.maxlen_set then
  rcall('HSET', kMeta, 'opts.maxLenEvents', DEFAULT_MAXLEN)
end
-- Burnt even by duplicates, as in BullMQ.
local job_id = tostring(rcall('INCR', base .. 'id'))
if ARGV[2] ~= '' then
  job_id = ARGV[2]
  if rcall('EXISTS', base .. job_id) == 1 then
    event(base, meta.maxlen, 'duplicated', 'jobId', job_id)
    return { job_id, 'duplicated' }
  end
else
  local t = foreign_type(base .. job_id)
  if t and t ~= 'none' then
    return redis.error_reply('job key ' .. base .. job_id .. ' holds a ' .. t ..
                             ', not a job hash')
  end
end

local function owner_is_live(dk, owner)
  -- A key without TTL whose job is gone is stale: the add proceeds.
  return rcall('PTTL', dk) ~= -1 or rcall('EXISTS', base .. owner) == 1
end

local deid, ttl = ARGV[10], tonumber(ARGV[11]) or 0
if deid ~= '' then
  local dk = base .. 'de:' .. deid
  local owner = rcall('GET', dk)
  if owner and owner_is_live(dk, owner) then
    if ARGV[13] == '1' and rcall('ZREM', base .. 'delayed', owner) == 1 then
      delete_job_keys(base, owner)
      event(base, meta.maxlen, 'removed', 'jobId', owner, 'prev', 'delayed')
    else
      if ARGV[12] == '1' and ttl > 0 then rcall('PEXPIRE', dk, ttl) end
      event(base, meta.maxlen, 'deduplicated', 'jobId', owner, 'deduplicationId', deid,
            'deduplicatedJobId', job_id)
      return { owner, 'deduplicated' }
    end
  end
  if ttl > 0 then rcall('SET', dk, job_id, 'PX', ttl) else rcall('SET', dk, job_id) end
end

local jk = base .. job_id
local delay, priority = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
local fields = { 'name', ARGV[3], 'data', ARGV[4], 'opts', ARGV[5], 'timestamp', ARGV[6],
                 'delay', delay, 'priority', priority }
if deid ~= '' then
  fields[#fields + 1] = 'deid'
  fields[#fields + 1] = deid
end
rcall('HSET', jk, unpack(fields))
event(base, meta.maxlen, 'added', 'jobId', job_id, 'name', ARGV[3])
if delay > 0 then
  local due = tonumber(ARGV[6]) + delay
  add_delayed(base, job_id, due)
  event(base, meta.maxlen, 'delayed', 'jobId', job_id, 'delay', due)
  mark_delayed(base)
else
  push_ready(base, job_id, priority, ARGV[9] == '1')
  event(base, meta.maxlen, 'waiting', 'jobId', job_id)
  mark_ready(base, meta)
end
return { job_id, 'added' }
