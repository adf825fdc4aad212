-- notifyq counts: jobs per state in one round trip. ARGV: 1 base.
-- Returns { wait, active, prioritized, delayed, completed, failed,
-- waiting-children, paused (legacy list), is paused (0/1) }.
local base = ARGV[1]
return { rcall('LLEN', base .. 'wait'), rcall('LLEN', base .. 'active'),
         rcall('ZCARD', base .. 'prioritized'), rcall('ZCARD', base .. 'delayed'),
         rcall('ZCARD', base .. 'completed'), rcall('ZCARD', base .. 'failed'),
         rcall('ZCARD', base .. 'waiting-children'), rcall('LLEN', base .. 'paused'),
         rcall('HEXISTS', base .. 'meta', 'paused') }
