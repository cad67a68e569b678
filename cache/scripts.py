"""Lua scripts of the cache tier, each touching one user's hash slot only.

Version checks read the fixed-width decimal header of a value (see ``codec``) so the
scripts never decode msgpack. A value is "parsable" when it starts with our schema byte,
has 20 digits and a known flag; anything else (corrupt, foreign, older schema) may be
overwritten by any fill.

Set-if-newer (invariants 3 and 4): store when the key is absent, or its value is
unparsable, or the new version is greater, or the versions are equal and the current
value is a marker. Otherwise the write is refused as stale.
"""

from __future__ import annotations

# Shared Lua prelude: header parsing. ARGV[1] is always the schema byte.
_PRELUDE = """
local schema = ARGV[1]
local function parse(v)
  if not v or string.len(v) < 22 or string.sub(v, 1, 1) ~= schema then return nil end
  local digits = string.sub(v, 2, 21)
  if not string.match(digits, '^%d+$') then return nil end
  local flag = string.sub(v, 22, 22)
  if flag ~= 'C' and flag ~= 'M' then return nil end
  return tonumber(digits), flag
end
"""

# KEYS[1] ctx, KEYS[2] lease
# ARGV[2] lease token, ARGV[3] lease ms, ARGV[4] raw bytes the caller found corrupt ('' if none)
# -> the current value (bytes) when a complete one is there; else {1, floor} lease acquired
# or {0, floor} lease busy, where floor is the version of a marker found there (0: none).
# Combining "is it there now?" with the lease avoids a second miss round trip and closes
# the window where the value lands between the caller's GET and its lease attempt. The
# marker's version tells the filler the oldest result worth loading (a lagging read
# replica's older answer is discarded, not cached).
ACQUIRE = (
    _PRELUDE
    + """
local cur = redis.call('GET', KEYS[1])
local floor = 0
if cur and cur ~= ARGV[4] then
  local v, flag = parse(cur)
  if v and flag == 'C' then return cur end
  if v and flag == 'M' then floor = v end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {1, floor} end
return {0, floor}
"""
)

# KEYS[1] ctx, KEYS[2] lease
# ARGV[2] new value, ARGV[3] ttl ms, ARGV[4] lease token ('' = none held),
# ARGV[5] raw bytes the caller found corrupt ('' if none; replaced unconditionally)
# -> {stored 0/1, lease 1 held-and-released / 0 lost / -1 none held}
# The lease is released by token compare-and-delete in the same script, so a lease that
# expired and was taken by another filler is never deleted by us.
FILL = (
    _PRELUDE
    + """
local lease = -1
if ARGV[4] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[4] then
    redis.call('DEL', KEYS[2])
    lease = 1
  else
    lease = 0
  end
end
local new = ARGV[2]
local nv = tonumber(string.sub(new, 2, 21))
local cur = redis.call('GET', KEYS[1])
local store = 0
if not cur or cur == ARGV[5] then
  store = 1
else
  local cv, cflag = parse(cur)
  if not cv or nv > cv or (nv == cv and cflag == 'M') then store = 1 end
end
if store == 1 then redis.call('SET', KEYS[1], new, 'PX', ARGV[3]) end
return {store, lease}
"""
)

# KEYS[1] ctx, KEYS[2] lease
# ARGV[2] marker for the given version, ARGV[3] ttl ms,
# ARGV[4] '1' = force (ops invalidate), '0' = only if the cache may be older than version
# -> 1 marker written, 0 kept (the cache already holds a complete value at >= version)
# The marker takes the larger of the given and the current version, so invalidating
# never lets the cache go backwards: an in-flight fill older than what was cached is
# refused, where a bare DEL would let it reinstall an old context.
INVALIDATE = (
    _PRELUDE
    + """
local marker = ARGV[2]
local mv = tonumber(string.sub(marker, 2, 21))
local cur = redis.call('GET', KEYS[1])
local cv, cflag = parse(cur)
if cv then
  if ARGV[4] == '0' and cflag == 'C' and cv >= mv then return 0 end
  if cv > mv then marker = string.sub(cur, 1, 21) .. 'M' end
end
redis.call('SET', KEYS[1], marker, 'PX', ARGV[3])
return 1
"""
)

# KEYS[1] lease; ARGV[2] token. Release a lease we hold (the loader failed).
RELEASE = (
    _PRELUDE
    + """
if redis.call('GET', KEYS[1]) == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0
"""
)

# KEYS[1] epoch; ARGV[1] generation, ARGV[2] the server's run id ('' when unknown)
# -> the epoch record after the call ("<generation>:<run id>").
# Only ever raises the generation: a process that computed a lower one (it raced with a
# turnover elsewhere) gets the higher record back and adopts it. The same generation
# with another run id is re-stamped with the current server's.
RAISE_EPOCH = """
local cur = redis.call('GET', KEYS[1])
local g = tonumber(ARGV[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if sep then
    local cg = tonumber(string.sub(cur, 1, sep - 1))
    if cg and (cg > g or (cg == g and string.sub(cur, sep + 1) == ARGV[2])) then
      return cur
    end
  end
end
local new = ARGV[1] .. ':' .. ARGV[2]
redis.call('SET', KEYS[1], new)
return new
"""
