-- rl-commons: idempotent, atomic apply of one batch of per-arm deltas.
-- KEYS[1] config  KEYS[2] state hash  KEYS[3] version  KEYS[4] updated_at
-- KEYS[5] applied hash (per rewards partition p: o:<p> watermark, t:<p> clock)
-- KEYS[6..] legacy mode only: one dedupe key per decision_id in the batch
-- ARGV[1] dedupe ttl (s, legacy mode)  ARGV[2] now (unix s, string)  ARGV[3] channel
-- ARGV[4] d  ARGV[5] dual delta (string; "0" leaves the multiplier alone)
-- ARGV[6] number of arms  ARGV[7] number of partitions (0: legacy mode)
-- ARGV[8] seen prefix (the policy's ``{base}:seen``)  ARGV[9] window (s)  ARGV[10] bucket (s)
-- then per partition: p, its new watermark (highest offset of the caller's batch), the
--   largest made_at of its observations, their count m, then m times: decision_id,
--   offset, bucket (floor(made_at / bucket width));
-- then per arm: name, decay factor, dn, xx bytes, b bytes, y bytes, xc bytes, nc
--   y  = the delta's component sums (C*d + 2*C doubles: y row-major, then s, then s2),
--        "" when none of its observations carried components;
--   xc, nc = Gram (d*d doubles) and weight of its component observations, "" when those
--        are all of its observations (the Gram is then the delta's xx).
-- Returns {"dup", i, ...} (1-based positions of the observations already applied, in
-- argument order; legacy mode: among the dedupe keys) and changes nothing, or
-- {"ok", version} after adding every delta. Numbers are returned as strings.
-- Errors, raised before anything is written: NOPOLICY (no config), BADDIM (the stored
-- config's n_features is not d: re-created meanwhile), BADDELTA (a delta of the wrong
-- size, or sums that would not be finite).
--
-- Exactly-once bookkeeping (bounded: nothing here grows with the history):
--   positioned mode: an observation is applied if its offset <= o:<p>, or its id is in
--   the set <seen>:<p>:<bucket> of its own bucket (a re-sent copy has the same made_at).
--   After the apply o:<p> = max(o:<p>, watermark), t:<p> = max(t:<p>, min(made_at, now)),
--   the sets of buckets wholly older than t:<p> - window are deleted (their indices are
--   in the sorted set <seen>:<p>) and the batch's ids are added to their buckets.
--   legacy mode: SET NX-like keys with a TTL, one per decision_id.
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
-- test_update_rule.py checks they agree. An arm whose stored xx or b has not the size d
-- asks starts from zero (count included), as read_state ignores it.
local raw_config = redis.call('GET', KEYS[1])
if not raw_config then
  return redis.error_reply('NOPOLICY ' .. KEYS[1])
end
local d = tonumber(ARGV[4])
local stored_d = tonumber(cjson.decode(raw_config)['n_features'])
if stored_d ~= d then
  return redis.error_reply('BADDIM ' .. tostring(stored_d))
end
local n_parts = tonumber(ARGV[7])
local a = 11
local parts = {}
local dups = {'dup'}
if n_parts == 0 then
  for i = 6, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
      dups[#dups + 1] = tostring(i - 5)
    end
  end
else
  local seen = ARGV[8]
  local idx = 0
  for _ = 1, n_parts do
    local part = {p = ARGV[a], mark = tonumber(ARGV[a + 1]), made = tonumber(ARGV[a + 2]),
      m = tonumber(ARGV[a + 3]), first = a + 4}
    a = a + 4
    local wm = tonumber(redis.call('HGET', KEYS[5], 'o:' .. part.p) or '-1')
    local prefix = seen .. ':' .. part.p .. ':'
    for _ = 1, part.m do
      idx = idx + 1
      if tonumber(ARGV[a + 1]) <= wm
          or redis.call('SISMEMBER', prefix .. ARGV[a + 2], ARGV[a]) == 1 then
        dups[#dups + 1] = tostring(idx)
      end
      a = a + 3
    end
    parts[#parts + 1] = part
  end
end
if #dups > 1 then
  return dups
end
local ttl = tonumber(ARGV[1])
local dual_delta = tonumber(ARGV[5])
local n_arms = tonumber(ARGV[6])
local C = 5
local n_y = C * d + 2 * C
local finite = true
local function check(x)
  if x ~= x or x == math.huge or x == -math.huge then finite = false end
  return x
end

-- old * decay + delta over `count` doubles; a missing blob (nil) counts as zeros
local CHUNK = 32
local function add_blob(old, delta, decay, count)
  if not old then
    return delta or string.rep(struct.pack('<d', 0.0), count)  -- a delta is finite (caller)
  end
  local out = {}
  for base = 0, count - 1, CHUNK do
    local m = math.min(CHUNK, count - base)
    local fmt = '<' .. string.rep('d', m)
    local o = {struct.unpack(fmt, old, 8 * base + 1)}
    if delta then
      local x = {struct.unpack(fmt, delta, 8 * base + 1)}
      for j = 1, m do o[j] = check(o[j] * decay + x[j]) end
    else
      for j = 1, m do o[j] = check(o[j] * decay) end
    end
    out[#out + 1] = struct.pack(fmt, unpack(o, 1, m))
  end
  return table.concat(out)
end

local function sized(blob, count)
  if blob and #blob == 8 * count then return blob end
  return nil
end

local writes = {}
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
  if not oxx or not ob then  -- no sums, or sums of another size: start from zero
    oxx, ob, oy, oxc, n_old = nil, nil, nil, nil, 0.0
  end
  local fields = {
    'xx:' .. arm, add_blob(oxx, dxx, decay, d * d),
    'b:' .. arm, add_blob(ob, db, decay, d),
    'n:' .. arm, string.format('%.17g', check(n_old * decay + dn)),
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
      fields[#fields + 1] = string.format('%.17g', check(nc_old * decay + nc_new))
    end
  end
  writes[#writes + 1] = fields
end
if not finite then
  return redis.error_reply('BADDELTA the sums would not be finite; nothing was applied')
end
-- nothing is written before this line: every check above may still refuse the batch
for _, fields in ipairs(writes) do
  redis.call('HSET', KEYS[2], unpack(fields))
end
if dual_delta ~= 0 then
  local dual = tonumber(redis.call('HGET', KEYS[2], 'dual') or '0') + dual_delta
  if dual < 0 then dual = 0.0 end
  redis.call('HSET', KEYS[2], 'dual', string.format('%.17g', dual))
end
for i = 6, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ttl)
end
if n_parts > 0 then
  local seen, window, width = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
  local now = tonumber(ARGV[2])
  for _, part in ipairs(parts) do
    local wm = tonumber(redis.call('HGET', KEYS[5], 'o:' .. part.p) or '-1')
    local clock = tonumber(redis.call('HGET', KEYS[5], 't:' .. part.p) or '0')
    if part.m > 0 then clock = math.max(clock, math.min(part.made, now)) end
    redis.call('HSET', KEYS[5], 'o:' .. part.p, string.format('%d', math.max(wm, part.mark)),
      't:' .. part.p, string.format('%.17g', clock))
    local index = seen .. ':' .. part.p
    local cutoff = math.floor((clock - window) / width)
    local old = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. cutoff)
    for _, b in ipairs(old) do
      redis.call('DEL', index .. ':' .. b)
    end
    if #old > 0 then
      redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. cutoff)
    end
    local j = part.first
    local added = {}
    for _ = 1, part.m do
      local b = ARGV[j + 2]
      if tonumber(b) >= cutoff then
        redis.call('SADD', index .. ':' .. b, ARGV[j])
        if not added[b] then
          added[b] = true
          redis.call('ZADD', index, b, b)
        end
      end
      j = j + 3
    end
  end
end
if n_arms == 0 and dual_delta == 0 then  -- only the marks moved: no new version
  return {'ok', redis.call('GET', KEYS[3]) or '0'}
end
local version = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[4], ARGV[2])
redis.call('PUBLISH', ARGV[3], tostring(version))
return {'ok', tostring(version)}
