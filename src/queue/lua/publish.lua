-- notifyq publish: PUBLISH a message once per marker, for handlers whose job
-- may run again after a crash (inapp). KEYS: 1 meta, 2 the marker.
-- ARGV: 1 base, 2 channel, 3 message, 4 the marker's lifetime in ms.
-- Returns the number of subscribers that got it, or -1 when the marker
-- exists: published before, nothing sent. The marker and the PUBLISH go
-- together, so a retried job publishes once while the marker lives.
if not rcall('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then
  return -1
end
return rcall('PUBLISH', ARGV[2], ARGV[3])
