-- notifyq extend: renews the locks of many jobs in one call (§8.6 extendLocks).
-- ARGV: 1 base, 2 lock_ms, then pairs id, token.
-- Returns one 1 (renewed) or 0 (lock lost or owned by another token) per pair.
local base = ARGV[1]
local lock_ms = tonumber(ARGV[2])
local out, renewed = {}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local lk = base .. id .. ':lock'
  if rcall('GET', lk) == token then
    rcall('PEXPIRE', lk, lock_ms)
    renewed[#renewed + 1] = id
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #renewed > 0 then bulk('SREM', base .. 'stalled', renewed) end
return out
