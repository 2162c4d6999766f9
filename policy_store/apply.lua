-- rl-commons: idempotent, atomic apply of one batch of per-arm deltas.
-- KEYS[1] config  KEYS[2] state hash  KEYS[3] version  KEYS[4] updated_at
-- KEYS[5..] one dedupe key per decision_id in the batch
-- ARGV[1] dedupe ttl (s)  ARGV[2] now (unix s, string)  ARGV[3] channel  ARGV[4] d
-- ARGV[5] dual delta (string; "0" leaves the multiplier alone)  ARGV[6] number of arms,
-- then per arm: name, decay factor, dn, xx bytes, b bytes, y bytes, xc bytes, nc
--   y  = the delta's component sums (C*d + 2*C doubles: y row-major, then s, then s2),
--        "" when none of its observations carried components;
--   xc, nc = Gram (d*d doubles) and weight of its component observations, "" when those
--        are all of its observations (the Gram is then the delta's xx).
-- Returns {"dup", i, ...} (1-based positions among the dedupe keys) and changes nothing,
-- or {"ok", version} after adding every delta. Numbers are returned as strings.
--
-- State hash fields (little-endian float64 blobs, numbers as %.17g strings):
--   xx:<arm> (d*d)  b:<arm> (d)  n:<arm>    the arm's sums
--   y:<arm> (C*d + 2*C)                     its component sums (absent: none yet)
--   xc:<arm> (d*d)  nc:<arm>                Gram and weight of its component observations,
--                                           only for a legacy arm (absent: xx:<arm>, n:<arm>)
--   dual                                    the Lagrange multiplier (absent: 0)
--
-- The arithmetic is the update rule of policy_store/_state.py (ArmStats.updated):
-- new = old * decay + delta, element-wise over xx, b, n and the component sums, with
-- decay = gamma^dn computed by the caller (decay_factor), and its legacy rule: the
-- component Gram becomes explicit (xc, nc) as soon as an arm has observations with and
-- without components. dual = max(0, dual + dual delta). tests/integration/
-- test_update_rule.py checks they agree.
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
local dual_delta = tonumber(ARGV[5])
local n_arms = tonumber(ARGV[6])
local C = 5
local n_y = C * d + 2 * C

-- old * decay + delta over `count` doubles; a missing blob (nil) counts as zeros
local CHUNK = 32
local function add_blob(old, delta, decay, count)
  if not old then
    return delta or string.rep(struct.pack('<d', 0.0), count)
  end
  local out = {}
  for base = 0, count - 1, CHUNK do
    local m = math.min(CHUNK, count - base)
    local fmt = '<' .. string.rep('d', m)
    local o = {struct.unpack(fmt, old, 8 * base + 1)}
    if delta then
      local x = {struct.unpack(fmt, delta, 8 * base + 1)}
      for j = 1, m do o[j] = o[j] * decay + x[j] end
    else
      for j = 1, m do o[j] = o[j] * decay end
    end
    out[#out + 1] = struct.pack(fmt, unpack(o, 1, m))
  end
  return table.concat(out)
end

local function sized(blob, count)
  if blob and #blob == 8 * count then return blob end
  return nil
end

local a = 7
for _ = 1, n_arms do
  local arm = ARGV[a]
  local decay = tonumber(ARGV[a + 1])
  local dn = tonumber(ARGV[a + 2])
  local dxx, db, dy, dxc, dnc = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  a = a + 8
  if #dxx ~= 8 * d * d or #db ~= 8 * d or (#dy ~= 0 and #dy ~= 8 * n_y)
      or (#dxc ~= 0 and (#dxc ~= 8 * d * d or #dy == 0)) then
    return redis.error_reply('BADDELTA wrong dimension for arm ' .. arm)
  end
  local old = redis.call('HMGET', KEYS[2], 'xx:' .. arm, 'b:' .. arm, 'n:' .. arm,
    'y:' .. arm, 'xc:' .. arm, 'nc:' .. arm)
  local oxx, ob, oy, oxc = sized(old[1], d * d), sized(old[2], d), sized(old[4], n_y),
    sized(old[5], d * d)
  local n_old = tonumber(old[3] or '0')
  local fields = {
    'xx:' .. arm, add_blob(oxx, dxx, decay, d * d),
    'b:' .. arm, add_blob(ob, db, decay, d),
    'n:' .. arm, string.format('%.17g', n_old * decay + dn),
  }
  if #dy > 0 or oy then
    fields[#fields + 1] = 'y:' .. arm
    fields[#fields + 1] = add_blob(oy, #dy > 0 and dy or nil, decay, n_y)
    -- the component Gram: explicit once some observations of the arm lack components
    local g_old, nc_old, explicit_old = nil, 0.0, false
    if oxc then
      g_old, nc_old, explicit_old = oxc, tonumber(old[6] or '0'), true
    elseif oy then
      g_old, nc_old = oxx, n_old
    else
      explicit_old = n_old > 0
    end
    local g_new, nc_new, explicit_new = nil, 0.0, false
    if #dxc > 0 then
      g_new, nc_new, explicit_new = dxc, tonumber(dnc), true
    elseif #dy > 0 then
      g_new, nc_new = dxx, dn
    else
      explicit_new = dn > 0
    end
    if explicit_old or explicit_new then
      fields[#fields + 1] = 'xc:' .. arm
      fields[#fields + 1] = add_blob(g_old, g_new, decay, d * d)
      fields[#fields + 1] = 'nc:' .. arm
      fields[#fields + 1] = string.format('%.17g', nc_old * decay + nc_new)
    end
  end
  redis.call('HSET', KEYS[2], unpack(fields))
end
if dual_delta ~= 0 then
  local dual = tonumber(redis.call('HGET', KEYS[2], 'dual') or '0') + dual_delta
  if dual < 0 then dual = 0.0 end
  redis.call('HSET', KEYS[2], 'dual', string.format('%.17g', dual))
end
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ttl)
end
local version = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[4], ARGV[2])
redis.call('PUBLISH', ARGV[3], tostring(version))
return {'ok', tostring(version)}
