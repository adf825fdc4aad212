-- notifyq clean: deletes jobs of one state older than a grace period (§8.6).
-- ARGV: 1 base, 2 state (completed, failed, delayed, prioritized, wait),
--       3 grace ms, 4 limit (0 = 1000 per call), 5 now ms.
-- Age is finishedOn for finished sets (their score), else the job's
-- timestamp. Scheduler iterations are kept. Returns the ids deleted.
local base, state = ARGV[1], ARGV[2]
local cutoff = tonumber(ARGV[5]) - tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
if limit <= 0 then limit = 1000 end
local key = base .. state
local meta = queue_meta(base)
local deleted = {}

local function take(id)
  local jk = base .. id
  if rcall('HGET', jk, 'rjk') then return false end
  local ts = tonumber(rcall('HGET', jk, 'timestamp')) or 0
  return ts <= cutoff
end

if state == 'completed' or state == 'failed' then
  deleted = rcall('ZRANGEBYSCORE', key, '-inf', cutoff, 'LIMIT', 0, limit)
  if #deleted > 0 then bulk('ZREM', key, deleted) end
elseif state == 'delayed' or state == 'prioritized' then
  for _, id in ipairs(rcall('ZRANGE', key, 0, -1)) do
    if #deleted >= limit then break end
    if take(id) then deleted[#deleted + 1] = id end
  end
  if #deleted > 0 then bulk('ZREM', key, deleted) end
elseif state == 'wait' then
  for _, id in ipairs(rcall('LRANGE', key, 0, -1)) do
    if #deleted >= limit then break end
    if take(id) then
      rcall('LREM', key, 1, id)
      deleted[#deleted + 1] = id
    end
  end
else
  return redis.error_reply('clean: unsupported state ' .. state)
end
for _, id in ipairs(deleted) do
  local deid = rcall('HGET', base .. id, 'deid')
  if deid and rcall('GET', base .. 'de:' .. deid) == id then rcall('DEL', base .. 'de:' .. deid) end
  delete_job_keys(base, id)
end
event(base, meta.maxlen, 'cleaned', 'count', #deleted)
return deleted
