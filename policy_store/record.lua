-- The record of one config change, made in the same atomic step as the change
-- (policy_store._record). KEYS: config, record (hash: created_at, reset_marks), applied,
-- epoch, changes stream, version, registry. ARGV: name as a JSON string, change, now,
-- stream maxlen, created_at ("" = kept; now on create), reset_marks JSON ("" = kept; the
-- watermarks on reset), the config JSON to create (create and rebuild only: SET NX; an
-- existing config makes it return false and change nothing), the name.
-- Appends the PolicyRecord JSON to the stream and returns it; false when there is no
-- change to record (the config is missing for anything but a delete). The config is
-- spliced in as stored, never decoded, so its numbers keep every digit.
local change, now = ARGV[2], ARGV[3]
if ARGV[7] ~= '' then
  if not redis.call('SET', KEYS[1], ARGV[7], 'NX') then return false end
  redis.call('SETNX', KEYS[6], 0)
  redis.call('SADD', KEYS[7], ARGV[8])
end
local cfg = redis.call('GET', KEYS[1])
if not cfg and change ~= 'delete' then return false end
local created = redis.call('HGET', KEYS[2], 'created_at')
local marks = redis.call('HGET', KEYS[2], 'reset_marks')
if change == 'create' or not created then created = now end
if ARGV[5] ~= '' then created = ARGV[5] end
if not marks then marks = '{}' end
if ARGV[6] ~= '' then
  marks = ARGV[6]
elseif change == 'reset' then
  local parts = {}
  local raw = redis.call('HGETALL', KEYS[3])
  for i = 1, #raw, 2 do
    if string.sub(raw[i], 1, 2) == 'o:' then
      parts[#parts + 1] = '"' .. string.sub(raw[i], 3) .. '": ' .. raw[i + 1]
    end
  end
  marks = '{' .. table.concat(parts, ', ') .. '}'
end
if change == 'delete' then
  cfg = 'null'
else
  redis.call('HSET', KEYS[2], 'created_at', created, 'reset_marks', marks)
  if ARGV[7] ~= '' then redis.call('SET', KEYS[4], now) end
end
local body = '{"at": ' .. now .. ', "change": "' .. change .. '", "config": ' .. cfg ..
  ', "created_at": ' .. created .. ', "name": ' .. ARGV[1] .. ', "reset_marks": ' .. marks .. '}'
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'record', body)
return body
