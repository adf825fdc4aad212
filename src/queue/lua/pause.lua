-- notifyq pause: pause ('1') or resume ('0') a queue as BullMQ's Queue does (§8.6).
-- ARGV: 1 base, 2 '1' pause / '0' resume. Returns 1 if the state changed.
local base = ARGV[1]
local kMeta = base .. 'meta'
local meta = queue_meta(base)
if ARGV[2] == '1' then
  if meta.paused then return 0 end
  rcall('HSET', kMeta, 'paused', 1)
  rcall('DEL', base .. 'marker')
  event(base, meta.maxlen, 'paused')
  return 1
end
if not meta.paused then return 0 end
rcall('HDEL', kMeta, 'paused')
-- Ids a BullMQ 5 pause left in the legacy list.
local kPaused, kWait = base .. 'paused', base .. 'wait'
for _ = 1, 7000 do
  if not rcall('RPOPLPUSH', kPaused, kWait) then break end
end
if rcall('LLEN', kWait) > 0 or rcall('ZCARD', base .. 'prioritized') > 0 then
  meta.paused = false
  mark_ready(base, meta)
else
  mark_delayed(base)
end
event(base, meta.maxlen, 'resumed')
return 1
