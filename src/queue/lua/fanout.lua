-- notifyq fanout: one batch of a broadcast (handlers/broadcast.c), atomic.
-- Adds standard jobs with custom ids to a queue, as addBulk's adds do
-- (§8.1: INCR id for every add, an id already there is left as it is with
-- a "duplicated" event, else HSET, LPUSH wait, added + waiting events, the
-- "0" marker unless paused or maxed), and sets the broadcast's progress
-- (updateProgress, §8.6) in the same call: Redis holds both or neither.
-- The broadcast's job is in another queue: on Redis Cluster both queues
-- must share a hash tag (BULLMQ-LAYOUT.md §2), as flows across queues do.
-- KEYS[1]: the target's meta key.
-- ARGV: 1 target base, 2 timestamp ms, 3 broadcast's base, 4 its job id,
--       5 its new progress JSON, then 4 per job: id, name, data, opts.
-- Returns { added, { ids already there } }, or -1 when the broadcast's job
-- is gone (nothing is added then).
local base, now = ARGV[1], ARGV[2]
local pbase, pid, progress = ARGV[3], ARGV[4], ARGV[5]
if rcall('EXISTS', pbase .. pid) == 0 then return -1 end
local meta = queue_meta(base)
if not meta.maxlen_set then
  rcall('HSET', base .. 'meta', 'opts.maxLenEvents', DEFAULT_MAXLEN)
end
local added, existing = 0, {}
for i = 6, #ARGV, 4 do
  local id, name = ARGV[i], ARGV[i + 1]
  rcall('INCR', base .. 'id')
  if rcall('EXISTS', base .. id) == 1 then
    event(base, meta.maxlen, 'duplicated', 'jobId', id)
    existing[#existing + 1] = id
  else
    rcall('HSET', base .. id, 'name', name, 'data', ARGV[i + 2], 'opts', ARGV[i + 3],
          'timestamp', now, 'delay', '0', 'priority', '0')
    event(base, meta.maxlen, 'added', 'jobId', id, 'name', name)
    push_ready(base, id, 0, false)
    event(base, meta.maxlen, 'waiting', 'jobId', id)
    added = added + 1
  end
end
if added > 0 then mark_ready(base, meta) end
rcall('HSET', pbase .. pid, 'progress', progress)
event(pbase, queue_meta(pbase).maxlen, 'progress', 'jobId', pid, 'data', progress)
return { added, existing }
