-- notifyq promote: a delayed job runs now (§8.6 promote).
-- ARGV: 1 base, 2 id. Returns 0, -1 no such job, -3 not delayed, -9 its key
-- holds no hash (the fetch fails it when it is due).
local base, id = ARGV[1], ARGV[2]
local jk = base .. id
local t = foreign_type(jk)
if t == 'none' then return -1 end
if t then return -9 end
if rcall('ZREM', base .. 'delayed', id) == 0 then return -3 end
local meta = queue_meta(base)
push_ready(base, id, tonumber(rcall('HGET', jk, 'priority')) or 0, false)
rcall('HSET', jk, 'delay', 0)
event(base, meta.maxlen, 'waiting', 'jobId', id, 'prev', 'delayed')
mark_ready(base, meta)
return 0
