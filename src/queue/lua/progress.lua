-- notifyq progress: job.updateProgress (§8.6); no lock check, as BullMQ.
-- ARGV: 1 base, 2 id, 3 progress JSON. Returns 0 or -1 (no such job).
local base, id = ARGV[1], ARGV[2]
if rcall('EXISTS', base .. id) == 0 then return -1 end
local meta = queue_meta(base)
rcall('HSET', base .. id, 'progress', ARGV[3])
event(base, meta.maxlen, 'progress', 'jobId', id, 'data', ARGV[3])
return 0
