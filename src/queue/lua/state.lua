-- notifyq state: a job's state as BullMQ's getState names it, with its hash.
-- ARGV: 1 base, 2 id. Returns { state, HGETALL } with state 'unknown' and an
-- empty hash for a missing job.
local base, id = ARGV[1], ARGV[2]
local h = redis.pcall('HGETALL', base .. id)
if is_wrongtype(h) then
  return redis.error_reply('job key ' .. base .. id .. ' holds a ' .. foreign_type(base .. id) ..
                           ', not a job hash')
end
h = check_reply(h)
if #h == 0 then return { 'unknown', h } end
local zsets = { 'completed', 'failed', 'delayed', 'prioritized', 'waiting-children' }
for _, s in ipairs(zsets) do
  if rcall('ZSCORE', base .. s, id) then
    return { s, h }
  end
end
if rcall('LPOS', base .. 'active', id) then return { 'active', h } end
if rcall('LPOS', base .. 'wait', id) then return { 'waiting', h } end
if rcall('LPOS', base .. 'paused', id) then return { 'waiting', h } end
return { 'unknown', h }
