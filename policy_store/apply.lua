-- rl-commons: idempotent, atomic apply of one batch of per-arm deltas.
-- KEYS[1] config  KEYS[2] state hash  KEYS[3] version  KEYS[4] updated_at
-- KEYS[5..] one dedupe key per decision_id in the batch
-- ARGV[1] dedupe ttl (s)  ARGV[2] now (unix s, string)  ARGV[3] channel  ARGV[4] d
-- ARGV[5] number of arms, then per arm: name, decay factor, dn, xx bytes, b bytes
-- Returns {"dup", i, ...} (1-based positions among the dedupe keys) and changes nothing,
-- or {"ok", version} after adding every delta. Numbers are returned as strings.
-- The arithmetic is the update rule of policy_store/_state.py (ArmStats.updated):
-- new = old * decay + delta, element-wise over xx, b and n, with decay = gamma^dn computed
-- by the caller (decay_factor). tests/integration/test_update_rule.py checks they agree.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOPOLICY ' .. KEYS[1])
end
local dups = {'dup'}
for i = 5, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    dups[#dups + 1] = tostring(i - 4)
  end
end
if #dups > 1 then
  return dups
end
local ttl = tonumber(ARGV[1])
local d = tonumber(ARGV[4])
local n_arms = tonumber(ARGV[5])

local function add_blob(old, delta, decay, count)
  local out = {}
  local pos_o, pos_d = 1, 1
  local o, x
  for i = 1, count do
    x, pos_d = struct.unpack('<d', delta, pos_d)
    if old then
      o, pos_o = struct.unpack('<d', old, pos_o)
    else
      o = 0.0
    end
    out[i] = struct.pack('<d', o * decay + x)
  end
  return table.concat(out)
end

local a = 6
for _ = 1, n_arms do
  local arm = ARGV[a]
  local decay = tonumber(ARGV[a + 1])
  local dn = tonumber(ARGV[a + 2])
  local dxx = ARGV[a + 3]
  local db = ARGV[a + 4]
  a = a + 5
  if #dxx ~= 8 * d * d or #db ~= 8 * d then
    return redis.error_reply('BADDELTA wrong dimension for arm ' .. arm)
  end
  local old = redis.call('HMGET', KEYS[2], 'xx:' .. arm, 'b:' .. arm, 'n:' .. arm)
  local oxx, ob, on = old[1], old[2], old[3]
  if oxx and #oxx ~= 8 * d * d then oxx = false end
  if ob and #ob ~= 8 * d then ob = false end
  local n_old = 0.0
  if on then n_old = tonumber(on) end
  redis.call('HSET', KEYS[2],
    'xx:' .. arm, add_blob(oxx or nil, dxx, decay, d * d),
    'b:' .. arm, add_blob(ob or nil, db, decay, d),
    'n:' .. arm, string.format('%.17g', n_old * decay + dn))
end
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ttl)
end
local version = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[4], ARGV[2])
redis.call('PUBLISH', ARGV[3], tostring(version))
return {'ok', tostring(version)}
