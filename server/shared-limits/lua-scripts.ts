/*
 * The Lua scripts that keep an API key's limits in Redis. Each runs atomically, so replicas that
 * admit requests of the same key at the same moment see one order. Time is Redis's own clock
 * (TIME), so replicas whose clocks differ still refill the same bucket alike.
 *
 * Buckets are hashes {l: level, t: ms of that level}; an absent bucket is full. Counts are hashes
 * of replica id → "count:expiresAtMs": each replica writes only its own field, with its own count
 * (never an increment, so a lost reply or a reconnect cannot drift it), and refreshes it while it
 * is not zero; a field past its expiry belongs to a replica that died and is dropped when read.
 *
 * Levels go back as strings: Redis turns a Lua number reply into an integer.
 */

const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function bucket_level(key, cap, rate, now)
  local state = redis.call('HMGET', key, 'l', 't')
  local level, at = tonumber(state[1]), tonumber(state[2])
  if level == nil or at == nil then return cap end
  if now > at and level < cap then level = math.min(cap, level + (now - at) * rate / 1000) end
  return level
end

local function bucket_store(key, level, cap, rate, now)
  if level >= cap then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'l', level, 't', now)
  -- A bucket nobody touches is full again after this long: it need not be kept.
  local ms = 60000
  if rate > 0 then ms = math.ceil((cap - level) * 1000 / rate) + 1000 end
  redis.call('PEXPIRE', key, ms)
end

local function others_count(key, me, now)
  local fields = redis.call('HGETALL', key)
  local sum = 0
  for i = 1, #fields, 2 do
    if fields[i] ~= me then
      local count, expires = string.match(fields[i + 1], '^(%d+):(%d+)$')
      if count == nil or tonumber(expires) < now then
        redis.call('HDEL', key, fields[i])
      else
        sum = sum + tonumber(count)
      end
    end
  end
  return sum
end

local function publish(key, me, count, now, lease)
  if count <= 0 then
    redis.call('HDEL', key, me)
  else
    redis.call('HSET', key, me, string.format('%d:%d', count, now + lease))
    -- The whole hash goes when no replica refreshes it any more.
    redis.call('PEXPIRE', key, lease)
  end
end

local function slack(cap)
  return 1e-9 * math.max(1, cap)
end

local function wait_ms(level, rate)
  if rate <= 0 then return -1 end
  return math.max(1, math.ceil((1 - level) * 1000 / rate))
end
`;

/**
 * Admits one request of a key: the key's stream cap (all replicas' streams, this replica's count
 * given with the new request in it), its token bucket (not in debt) and its request bucket (one
 * credit taken). Publishes this replica's stream count when it admits.
 * KEYS: requests, tokens, streams. ARGV: replica, streams here, stream cap, request capacity,
 * request rate, token capacity, token rate (capacity -1: no such limit), lease ms.
 * Reply: verdict ('ok', 'streams', 'tokens', 'requests'), request level, token level, others'
 * streams, ms until a retry can pass (-1: none will).
 */
export const ADMIT = `${PRELUDE}
local me, mine, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local req_cap, req_rate = tonumber(ARGV[4]), tonumber(ARGV[5])
local tok_cap, tok_rate = tonumber(ARGV[6]), tonumber(ARGV[7])
local lease = tonumber(ARGV[8])
local now = now_ms()
local others = others_count(KEYS[3], me, now)
local req, tok = -1, -1
if req_cap >= 0 then req = bucket_level(KEYS[1], req_cap, req_rate, now) end
if tok_cap >= 0 then tok = bucket_level(KEYS[2], tok_cap, tok_rate, now) end
if cap >= 0 and others + mine > cap then
  return {'streams', tostring(req), tostring(tok), others, 0}
end
if tok_cap >= 0 and tok + slack(tok_cap) < 1 then
  return {'tokens', tostring(req), tostring(tok), others, wait_ms(tok, tok_rate)}
end
if req_cap >= 0 then
  if req + slack(req_cap) < 1 then
    return {'requests', tostring(req), tostring(tok), others, wait_ms(req, req_rate)}
  end
  req = math.max(req - 1, 0)
  bucket_store(KEYS[1], req, req_cap, req_rate, now)
end
publish(KEYS[3], me, mine, now, lease)
return {'ok', tostring(req), tostring(tok), others, 0}
`;

/**
 * Reserves a connection of a key against its cap (all replicas' connections; this replica's count
 * given with the new one in it) and reads the key's bucket levels, so the replica's view of them
 * is fresh before the connection's first request.
 * KEYS: connections, requests, tokens. ARGV: replica, connections here, cap (-1: none), request
 * capacity, request rate, token capacity, token rate, lease ms.
 * Reply: verdict ('ok', 'connections'), request level, token level, others' connections, 0.
 */
export const RESERVE = `${PRELUDE}
local me, mine, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local req_cap, req_rate = tonumber(ARGV[4]), tonumber(ARGV[5])
local tok_cap, tok_rate = tonumber(ARGV[6]), tonumber(ARGV[7])
local lease = tonumber(ARGV[8])
local now = now_ms()
local others = others_count(KEYS[1], me, now)
local req, tok = -1, -1
if req_cap >= 0 then req = bucket_level(KEYS[2], req_cap, req_rate, now) end
if tok_cap >= 0 then tok = bucket_level(KEYS[3], tok_cap, tok_rate, now) end
if cap >= 0 and others + mine > cap then
  return {'connections', tostring(req), tostring(tok), others, 0}
end
publish(KEYS[1], me, mine, now, lease)
return {'ok', tostring(req), tostring(tok), others, 0}
`;

/**
 * Charges generated tokens to a key's token bucket (it may go into debt).
 * KEYS: tokens. ARGV: capacity, rate, tokens. Reply: the level after the charge.
 */
export const CHARGE = `${PRELUDE}
local cap, rate, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local level = bucket_level(KEYS[1], cap, rate, now) - n
bucket_store(KEYS[1], level, cap, rate, now)
return tostring(level)
`;

/**
 * Writes this replica's connection and stream counts of a key (and so refreshes their lease).
 * KEYS: connections, streams. ARGV: replica, connections, streams, lease ms.
 */
export const PUBLISH = `${PRELUDE}
local now = now_ms()
publish(KEYS[1], ARGV[1], tonumber(ARGV[2]), now, tonumber(ARGV[4]))
publish(KEYS[2], ARGV[1], tonumber(ARGV[3]), now, tonumber(ARGV[4]))
return 1
`;
