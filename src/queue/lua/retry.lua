-- notifyq retry: failed (or completed) jobs back to wait.
-- ARGV: 1 base, 2 'one' | 'all', 3 state 'failed' | 'completed', 4 id (one) or
--       timestamp ms (all: jobs finished at or before it), 5 '1' to reset
--       attemptsMade/attemptsStarted (one).
-- one (BullMQ's job.retry): respects priority; returns 1, or -1 no job, -3
--   not in that state, -9 its key holds no hash. all (retryJobs): 1000 per
--   call, into wait whatever the priority, attempt counters kept, a job
--   whose key holds no hash left where it is; returns how many moved (call
--   again until 0).
local base, mode, state = ARGV[1], ARGV[2], ARGV[3]
local meta = queue_meta(base)
local kSet = base .. state
local result_field = state == 'failed' and 'failedReason' or 'returnvalue'

if mode == 'one' then
  local id = ARGV[4]
  local jk = base .. id
  local t = foreign_type(jk)
  if t == 'none' then return -1 end
  if t then return -9 end
  if rcall('ZREM', kSet, id) == 0 then return -3 end
  rcall('HDEL', jk, 'finishedOn', 'processedOn', result_field)
  if ARGV[5] == '1' then rcall('HDEL', jk, 'atm', 'ats') end
  push_ready(base, id, tonumber(rcall('HGET', jk, 'priority')) or 0, false)
  event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', state)
  mark_ready(base, meta)
  return 1
end

local ids = rcall('ZRANGEBYSCORE', kSet, '-inf', ARGV[4], 'LIMIT', 0, 1000)
local moved = {}
for _, id in ipairs(ids) do
  if not is_wrongtype(redis.pcall('HDEL', base .. id, 'finishedOn', 'processedOn',
                                  result_field)) then
    rcall('LPUSH', base .. 'wait', id)
    event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', state)
    moved[#moved + 1] = id
  end
end
if #moved == 0 then return 0 end
bulk('ZREM', kSet, moved)
mark_ready(base, meta)
return #moved
