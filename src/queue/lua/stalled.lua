-- notifyq stalled: the periodic stalled-job check (§8.4), at most once per
-- interval across all workers (Node's included) thanks to stalled-check.
-- ARGV: 1 base, 2 now_ms, 3 interval ms, 4 max stalled count.
-- Returns { requeued ids, ids given a deferred failure } or {} when another
-- process ran the check within the interval. A job whose key holds no hash
-- fails at once (fail_foreign), in neither list.
local base = ARGV[1]
local max_stalled = tonumber(ARGV[4])
if not rcall('SET', base .. 'stalled-check', ARGV[2], 'PX', ARGV[3], 'NX') then
  return {}
end
local meta = queue_meta(base)
local kStalled, kActive = base .. 'stalled', base .. 'active'
local requeued, doomed = {}, {}
local suspects = rcall('SMEMBERS', kStalled)
if #suspects > 0 then
  rcall('DEL', kStalled)
  for _, id in ipairs(suspects) do
    local jk = base .. id
    if string.sub(id, 1, 2) == '0:' then
      rcall('LREM', kActive, 1, id) -- a BullMQ 4 marker id
    elseif rcall('EXISTS', jk .. ':lock') == 0 and rcall('LREM', kActive, 1, id) > 0 then
      local stc = redis.pcall('HINCRBY', jk, 'stc', 1)
      if is_wrongtype(stc) then
        fail_foreign(base, id, meta.maxlen, ARGV[2], 'active')
      elseif check_reply(stc) > max_stalled and not is_scheduler_iteration(base, jk) then
        rcall('HSET', jk, 'defa', 'job stalled more than allowable limit')
        doomed[#doomed + 1] = id
      end
      if not is_wrongtype(stc) then
        -- BullMQ puts stalled jobs at the tail of wait whatever their priority.
        rcall('RPUSH', base .. 'wait', id)
        event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'active')
        event(base, meta.maxlen, 'stalled', 'jobId', id)
        requeued[#requeued + 1] = id
      end
    end
  end
  if #requeued > 0 then mark_ready(base, meta) end
end
local active = rcall('LRANGE', kActive, 0, -1)
if #active > 0 then bulk('SADD', kStalled, active) end
return { requeued, doomed }
