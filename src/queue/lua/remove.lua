-- notifyq remove: deletes a job that is not locked (§8.6 removeJob).
-- ARGV: 1 base, 2 id.
-- Returns 1 removed, 0 locked (being processed), -1 no such job,
-- -8 the pending iteration of a job scheduler.
local base, id = ARGV[1], ARGV[2]
local jk = base .. id
if rcall('EXISTS', jk) == 0 then return -1 end
if rcall('EXISTS', jk .. ':lock') == 1 then return 0 end
-- A key that holds no hash is removed all the same, as the job it stands for.
local h = redis.pcall('HMGET', jk, 'rjk', 'deid')
if is_wrongtype(h) then h = { false, false } end
h = check_reply(h)
if h[1] then
  local score = rcall('ZSCORE', base .. 'repeat', h[1])
  if score and id == 'repeat:' .. h[1] .. ':' .. score then return -8 end
end
local meta = queue_meta(base)
local prev = 'unknown'
for _, s in ipairs({ 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children' }) do
  if rcall('ZREM', base .. s, id) == 1 then prev = s break end
end
if prev == 'unknown' then
  for _, l in ipairs({ 'wait', 'active', 'paused' }) do
    if rcall('LREM', base .. l, 0, id) > 0 then prev = l break end
  end
end
if h[2] then
  local dk = base .. 'de:' .. h[2]
  if rcall('GET', dk) == id then rcall('DEL', dk) end
end
rcall('SREM', base .. 'stalled', id)
delete_job_keys(base, id)
event(base, meta.maxlen, 'removed', 'jobId', id, 'prev', prev)
return 1
