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

-- A job whose key holds no hash has no age: it is left to the fetch, which
-- fails it.
local function take(id)
  local h = redis.pcall('HMGET', base .. id, 'rjk', 'timestamp')
  if is_wrongtype(h) then return false end
  h = check_reply(h)
  if h[1] then return false end
  return (tonumber(h[2]) or 0) <= cutoff
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
  local deid = redis.pcall('HGET', base .. id, 'deid')
  if is_wrongtype(deid) then deid = false end
  deid = check_reply(deid)
  if deid and rcall('GET', base .. 'de:' .. deid) == id then rcall('DEL', base .. 'de:' .. deid) end
  delete_job_keys(base, id)
end
event(base, meta.maxlen, 'cleaned', 'count', #deleted)
return deleted
