-- notifyq recover: takes back the jobs of a worker incarnation that died
-- while its host lives, without waiting for lock expiry. Only jobs whose lock
-- still carries that incarnation's token prefix are touched, so a job another
-- worker took over meanwhile is left alone. Each counts as a stall, as
-- BullMQ's check would count it; a death by signal also bumps our own crash
-- counter, and a job in flight in max_crashes such deaths fails ("poison").
-- For a death by signal max_crashes alone decides: BullMQ's stalled limit
-- would otherwise fail a crashing job as "stalled more than allowable limit"
-- at its second death (default max_stalled 1) before it could be named
-- poison. The stall is still counted (stc). With max_crashes 0 nothing else
-- bounds a crashing job, so BullMQ's rule stays.
-- ARGV: 1 base, 2 now_ms, 3 token prefix, 4 max stalled, 5 signal name or ''
--       (not killed by a signal), 6 max crashes (0 = never fail), 7 failed
--       retention spec (see work.lua), 8 '1' to release instead: the jobs
--       never ran (a fetch whose reply was lost locked them), so they go back
--       to wait with no stall counted, nothing else.
-- Returns { requeued ids, failed ids }.
local base, now, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_stalled, signal, max_crashes = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local release = ARGV[8] == '1'
local meta = queue_meta(base)
local kActive = base .. 'active'
local requeued, failed = {}, {}

local function fail_poison(id, jk, crashes)
  local reason = 'crashed ' .. crashes .. ' workers (' .. signal .. ')'
  local atm = rcall('HINCRBY', jk, 'atm', 1)
  rcall('HSET', jk, 'failedReason', reason, 'finishedOn', now)
  rcall('HDEL', jk, 'defa')
  release_dedup(base, id, rcall('HGET', jk, 'deid'))
  event(base, meta.maxlen, 'failed', 'jobId', id, 'failedReason', reason, 'prev', 'active')
  if ARGV[7] == '0' then
    delete_job_keys(base, id)
  else
    rcall('ZADD', base .. 'failed', now, id)
  end
  failed[#failed + 1] = id
  return atm
end

local function requeue(id, jk, stc)
  local crash_counted = signal ~= '' and max_crashes > 0
  if stc > max_stalled and not crash_counted and not is_scheduler_iteration(base, jk) then
    rcall('HSET', jk, 'defa', 'job stalled more than allowable limit')
  end
  rcall('RPUSH', base .. 'wait', id)
  event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'active')
  event(base, meta.maxlen, 'stalled', 'jobId', id)
  requeued[#requeued + 1] = id
end

-- A job of the dead worker counts a stall (and a crash); one whose key
-- holds no hash fails at once.
local function take_back(id, jk)
  local stc = redis.pcall('HINCRBY', jk, 'stc', 1)
  if is_wrongtype(stc) then
    fail_foreign(base, id, meta.maxlen, ARGV[2], 'active')
    failed[#failed + 1] = id
    return
  end
  stc = check_reply(stc)
  local crashes = 0
  if signal ~= '' then crashes = rcall('HINCRBY', jk, 'nqcrash', 1) end
  if signal ~= '' and max_crashes > 0 and crashes >= max_crashes then
    fail_poison(id, jk, crashes)
  else
    requeue(id, jk, stc)
  end
end

for _, id in ipairs(rcall('LRANGE', kActive, 0, -1)) do
  local jk = base .. id
  local lock = rcall('GET', jk .. ':lock')
  if lock and string.sub(lock, 1, #prefix) == prefix then
    rcall('DEL', jk .. ':lock')
    rcall('LREM', kActive, 1, id)
    rcall('SREM', base .. 'stalled', id)
    if release then
      rcall('RPUSH', base .. 'wait', id)
      event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'active')
      requeued[#requeued + 1] = id
    else
      take_back(id, jk)
    end
  end
end
if #failed > 0 and ARGV[7] ~= '' and ARGV[7] ~= '0' then
  apply_retention(base, 'failed', ARGV[7], now)
end
if #requeued > 0 then mark_ready(base, meta) end
return { requeued, failed }
