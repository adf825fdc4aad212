-- notifyq retry: failed (or completed) jobs back to wait.
-- ARGV: 1 base, 2 'one' | 'all', 3 state 'failed' | 'completed', 4 id (one) or
--       timestamp ms (all: jobs finished at or before it), 5 '1' to reset
--       attemptsMade/attemptsStarted (one).
-- one (BullMQ's job.retry): respects priority; returns 1, or -1 no job, -3
--   not in that state. all (retryJobs): 1000 per call, into wait whatever the
--   priority, attempt counters kept; returns how many moved (call again
--   until 0).
local base, mode, state = ARGV[1], ARGV[2], ARGV[3]
local meta = queue_meta(base)
local kSet = base .. state
local result_field = state == 'failed' and 'failedReason' or 'returnvalue'

if mode == 'one' then
  local id = ARGV[4]
  local jk = base .. id
  if rcall('EXISTS', jk) == 0 then return -1 end
  if rcall('ZREM', kSet, id) == 0 then return -3 end
  rcall('HDEL', jk, 'finishedOn', 'processedOn', result_field)
  if ARGV[5] == '1' then rcall('HDEL', jk, 'atm', 'ats') end
  push_ready(base, id, tonumber(rcall('HGET', jk, 'priority')) or 0, false)
  event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', state)
  mark_ready(base, meta)
  return 1
end

local ids = rcall('ZRANGEBYSCORE', kSet, '-inf', ARGV[4], 'LIMIT', 0, 1000)
if #ids == 0 then return 0 end
for _, id in ipairs(ids) do
  rcall('HDEL', base .. id, 'finishedOn', 'processedOn', result_field)
  rcall('LPUSH', base .. 'wait', id)
  event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', state)
end
bulk('ZREM', kSet, ids)
mark_ready(base, meta)
return #ids
