-- notifyq progress: job.updateProgress (§8.6); no lock check, as BullMQ.
-- ARGV: 1 base, 2 id, 3 progress JSON. Returns 0, -1 (no such job) or -9
-- (its key holds no hash).
local base, id = ARGV[1], ARGV[2]
local t = foreign_type(base .. id)
if t == 'none' then return -1 end
if t then return -9 end
local meta = queue_meta(base)
rcall('HSET', base .. id, 'progress', ARGV[3])
event(base, meta.maxlen, 'progress', 'jobId', id, 'data', ARGV[3])
return 0
