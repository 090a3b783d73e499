"""The Redis store's Lua scripts: every write is one script, so it is atomic and needs one round trip.

Each script starts with ``PRELUDE``. Its first fifteen arguments are the key layout (``_ops.Layout.header``), so
key names are built in one place (Python) and the scripts only append ids. Timestamps are integer microseconds
passed as strings by the client; the scripts compare them with ``tonumber`` (exact below 2**53) and never
format them. Scripts compute key names from the layout, so they assume a single Redis node (not Cluster).

Redis does not roll a script back when it fails half-way: every script reads and checks all it depends on
(``filter_keys`` decodes the session's tags, ``check_fields`` the tags it is about to set) before its first
write, so an error leaves nothing behind; and ``purge`` tolerates what it cannot decode, so a session can
always be deleted.

The word index (what ``search`` reads instead of scanning) is kept by the same scripts, so it changes with the
messages or not at all. The client splits each message into its words (``_search_text.search_terms``, the one
rule every backend matches by: Lua cannot split Unicode words) and sends them beside the message; the scripts
keep ``word:<term>`` (the sessions using a word), ``postings:<id>:<term>`` (the positions of a word in a
session; terms hold no ``:``, so the split is unambiguous), ``terms:<id>`` (each message's words, one list
element per message, to unindex a rewound tail) and ``vocab:<id>`` (a session's words, to unindex it whole).
``indexed`` lists the sessions indexed since their creation, and the hash's ``ix`` how many of their messages
are: a session written before the index existed, or changed by a writer without it, is not in step (``in_step``)
and is scanned, as before, until ``rebuild_search_index`` indexes it.

Forks share their parent's messages (the fork chain, in ``PRELUDE``): a session's rows and index keys are under
its storage key, and a search walks from each storage key holding the words down to the forks reading it. The
index of a fork is its own messages only; ``in_step`` is per storage key and ``chain_in_step`` for a session.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

PRELUDE = r"""
local L = {
  session = ARGV[1], messages = ARGV[2], summaries = ARGV[3], owner = ARGV[4], tag = ARGV[5],
  index = ARGV[6], expiry = ARGV[7], refs = ARGV[8], lease = ARGV[9], fence = ARGV[10],
  word = ARGV[11], postings = ARGV[12], vocab = ARGV[13], terms = ARGV[14], indexed = ARGV[15],
  checkpoint = ARGV[16],
}
local A = 17  -- first argument of the operation

local function hkey(id) return L.session .. id end
local function mkey(id) return L.messages .. id end
local function skey(id) return L.summaries .. id end
local function pkey(id, term) return L.postings .. id .. ':' .. term end
local function vkey(id) return L.vocab .. id end
local function tkey(id) return L.terms .. id end

local function push_all(key, items, first, last, command)
  -- RPUSH (or ``command``) in slices: Lua's unpack cannot spread more than a few thousand values at once
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call(command or 'RPUSH', key, unpack(items, i, j))
    i = j + 1
  end
end

-- Put items[first..last] in front of the list at key, in their order.
local function prepend_all(key, items, first, last)
  local reversed = {}
  for i = last, first, -1 do reversed[#reversed + 1] = items[i] end
  push_all(key, reversed, 1, #reversed, 'LPUSH')
end

-- Add messages to the word index: lines[first..last] are their words (space-separated, from the client), the
-- first of them at position seq0. The positions are gathered per word first, so a long append costs one SADD
-- per distinct word (not one per word of each message: 100,000 messages were 9 million calls, past the
-- client's 5 s timeout). Postings get the session's remaining lifetime; the vocabulary does not, so purge can
-- still unindex a session Redis expired. ``prepend``: the messages go before the session's own (a fork taking
-- over the rows it read, ``release``).
local function index_messages(id, lines, first, last, seq0, prepend)
  if last < first then return end
  local by_term, order = {}, {}
  for i = first, last do
    local seq = seq0 + (i - first)
    for term in string.gmatch(lines[i], '[^ ]+') do
      local seqs = by_term[term]
      if not seqs then
        seqs = {}
        by_term[term] = seqs
        order[#order + 1] = term
      end
      seqs[#seqs + 1] = seq
    end
  end
  local ttl = redis.call('PTTL', hkey(id))
  for _, term in ipairs(order) do
    local key = pkey(id, term)
    push_all(key, by_term[term], 1, #by_term[term], 'SADD')
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    if redis.call('SADD', vkey(id), term) == 1 then redis.call('SADD', L.word .. term, id) end
  end
  if prepend then prepend_all(tkey(id), lines, first, last) else push_all(tkey(id), lines, first, last) end
  if ttl > 0 then redis.call('PEXPIRE', tkey(id), ttl) end
end

-- The fork chain (docs/stores.md). A session's rows are kept under its storage key: its id, or, once it is
-- deleted while forks still read it, a ghost key (a NUL first: no id is one). A fork's hash names the storage
-- key it reads (``parent``) and up to where (``at``): its messages [0, at) are the parent's, read through the
-- parent's own link in turn, and its own list holds [at, count) (seq ``at`` first). The parent's hash lists
-- its forks (a field ``f:<key>`` each). Without ``parent`` a session is what it always was: ``at`` is 0.
local function at_of(k) return tonumber(redis.call('HGET', hkey(k), 'at') or 0) end
local function parent_of(k) return redis.call('HGET', hkey(k), 'parent') end
local function count(k) return at_of(k) + redis.call('LLEN', mkey(k)) end
local function is_ghost(k) return redis.call('HEXISTS', hkey(k), 'ghost') == 1 end

local function forks_of(k)
  local out = {}
  local flat = redis.call('HGETALL', hkey(k))
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, 2) == 'f:' then out[#out + 1] = string.sub(flat[i], 3) end
  end
  return out
end

local function chained(k) return parent_of(k) ~= false or #forks_of(k) > 0 end

-- Where messages [first, last) of k are stored: {key, low, high} runs, in order.
local function segments(k, first, last)
  local runs = {}
  while first < last do
    local at, parent = at_of(k), parent_of(k)
    local low = parent and math.max(first, at) or first
    if low < last then table.insert(runs, 1, {k, low, last}) end
    if not parent or first >= at then break end
    last = math.min(last, at)
    k = parent
  end
  return runs
end

-- Elements [first, last) of k's messages (list = mkey) or of their words (list = tkey), across the chain.
local function read_chain(k, first, last, list)
  local out = {}
  for _, run in ipairs(segments(k, first, last)) do
    local base = at_of(run[1])
    for _, item in ipairs(redis.call('LRANGE', list(run[1]), run[2] - base, run[3] - base - 1)) do
      out[#out + 1] = item
    end
  end
  return out
end

-- Remove the session's own messages from seq ``to`` on (to >= its fork point) from the word index, before
-- they are cut.
local function unindex_from(id, to)
  local at = at_of(id)
  local first = to - at
  local i = first
  while true do
    local lines = redis.call('LRANGE', tkey(id), i, i + 999)
    if #lines == 0 then break end
    for offset, line in ipairs(lines) do
      local seq = at + i + offset - 1
      for term in string.gmatch(line, '[^ ]+') do
        local key = pkey(id, term)
        redis.call('SREM', key, seq)
        if redis.call('SCARD', key) == 0 then
          redis.call('SREM', vkey(id), term)
          redis.call('SREM', L.word .. term, id)
        end
      end
    end
    i = i + #lines
  end
  if first == 0 then redis.call('DEL', tkey(id)) else redis.call('LTRIM', tkey(id), 0, first - 1) end
end

-- Remove a session from the word index entirely.
local function unindex_all(id)
  for _, term in ipairs(redis.call('SMEMBERS', vkey(id))) do
    redis.call('DEL', pkey(id, term))
    redis.call('SREM', L.word .. term, id)
  end
  redis.call('DEL', vkey(id), tkey(id))
  redis.call('SREM', L.indexed, id)
end

-- Is the word index of the session's own messages complete: indexed since it was created, and every message
-- since then written by a script that kept the index (the hash's ``ix`` counts the messages indexed; a writer
-- of a version without the index, during a rolling upgrade, leaves it behind)? A ghost is not in ``indexed``
-- (which counts sessions): its ``ix`` alone says.
local function in_step(id)
  if redis.call('SISMEMBER', L.indexed, id) == 0 and not is_ghost(id) then return false end
  return tonumber(redis.call('HGET', hkey(id), 'ix')) == count(id)
end

-- Is every part of the chain the session reads indexed? Else search scans the session.
local function chain_in_step(id)
  while id do
    if not in_step(id) then return false end
    id = parent_of(id)
  end
  return true
end

-- A new session: indexed from its first message.
local function start_index(id)
  redis.call('SADD', L.indexed, id)
  redis.call('HSET', hkey(id), 'ix', 0)
end

-- A session whose index is not in step: drop it, so search scans the session until it is rebuilt.
local function leave_index(id)
  if redis.call('SISMEMBER', L.indexed, id) == 1 or is_ghost(id) then unindex_all(id) end
  redis.call('HDEL', hkey(id), 'ix')
end

-- Give the index keys of a session the hash's remaining lifetime (ttl > 0), or none.
local function index_ttl(id, ttl)
  local keys = {tkey(id)}
  for _, term in ipairs(redis.call('SMEMBERS', vkey(id))) do keys[#keys + 1] = pkey(id, term) end
  for _, key in ipairs(keys) do
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
  end
end

-- A JSON list of tags, decoded; nil (lenient) or an error (strict) when it is not one.
local function decode_tags(json, strict)
  local ok, tags = pcall(cjson.decode, json)
  if ok and type(tags) == 'table' then
    local valid = true
    for _, tag in ipairs(tags) do if type(tag) ~= 'string' then valid = false end end
    if valid then return tags end
  end
  if strict then error('claude-history: unreadable tags ' .. json) end
  return nil
end

-- The owner and tag sorted sets a session is listed in, read from its hash. Strict: an error, before any
-- write, if the stored tags cannot be read; lenient (purge): what can be read.
local function filter_keys(id, lenient)
  local keys = {}
  local owner = redis.call('HGET', hkey(id), 'owner')
  if owner then keys[#keys + 1] = L.owner .. owner end
  local tags = redis.call('HGET', hkey(id), 'tags')
  if tags then
    for _, tag in ipairs(decode_tags(tags, not lenient) or {}) do keys[#keys + 1] = L.tag .. tag end
  end
  return keys
end

-- Fields about to be set (field, value, ...): the tags among them must decode, checked before writing.
local function check_fields(first, last)
  for i = first, last - 1, 2 do
    if ARGV[i] == 'tags' then decode_tags(ARGV[i + 1], true) end
  end
end

-- Give every key of the session the hash's expiry (or none), and keep the expiry set and refs in step. A
-- session in a fork chain gets no Redis expiry (a fork must outlive its parent, and a parent the fork it
-- reads from): it stays in the expiry set, reads treat it as gone once expired, and the store purges it on
-- sight and in purge_expired, keeping what its forks read.
local function sync_expiry(id, expires_ms)
  local h = hkey(id)
  local expires = redis.call('HGET', h, 'expires')
  if expires and not chained(id) then
    if expires_ms then redis.call('PEXPIREAT', h, expires_ms) end
    redis.call('ZADD', L.expiry, expires, id)
    redis.call('HSET', L.refs, id, cjson.encode(filter_keys(id)))
    local ttl = redis.call('PTTL', h)
    if ttl > 0 then
      for _, key in ipairs({mkey(id), skey(id)}) do
        if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, ttl) end
      end
      index_ttl(id, ttl)
    end
  else
    redis.call('PERSIST', h)
    redis.call('PERSIST', mkey(id))
    redis.call('PERSIST', skey(id))
    index_ttl(id, 0)
    if expires then redis.call('ZADD', L.expiry, expires, id) else redis.call('ZREM', L.expiry, id) end
    redis.call('HDEL', L.refs, id)
  end
end

-- The Redis expiry a session's place in a fork chain calls for, after that place changed (sync_expiry).
local function settle_expiry(id)
  local expires = redis.call('HGET', hkey(id), 'expires')
  if expires then sync_expiry(id, string.format('%.0f', math.ceil(tonumber(expires) / 1000))) end
end

local collect

-- Cut k to messages [0, to): its own rows past ``to`` go with their index entries; cut below its fork point,
-- it reads less of its parent (nothing: no parent), whose rows may then go too (collect).
local function cut(k, to)
  local at, parent = at_of(k), parent_of(k)
  if in_step(k) then
    unindex_from(k, math.max(to, at))
    redis.call('HSET', hkey(k), 'ix', to)
  else
    leave_index(k)
  end
  if to <= at then redis.call('DEL', mkey(k)) else redis.call('LTRIM', mkey(k), 0, to - at - 1) end
  if parent and to < at then
    if to == 0 then
      redis.call('HDEL', hkey(k), 'parent', 'at')
      redis.call('HDEL', hkey(parent), 'f:' .. k)
    else
      redis.call('HSET', hkey(k), 'at', to)
    end
    collect(parent)
  end
end

-- After a fork of k went or reads less of it: if k is a ghost, drop the rows none of its forks reads any
-- more, and the ghost itself once no fork is left; a session left without forks gets its Redis expiry back.
function collect(k)
  if not is_ghost(k) then
    if redis.call('EXISTS', hkey(k)) == 1 and not chained(k) then settle_expiry(k) end
    return
  end
  local keep = 0
  for _, fork in ipairs(forks_of(k)) do keep = math.max(keep, at_of(fork)) end
  if keep > 0 then
    if keep < count(k) then cut(k, keep) end
    return
  end
  local parent = parent_of(k)
  unindex_all(k)
  redis.call('DEL', hkey(k), mkey(k))
  if parent then
    redis.call('HDEL', hkey(parent), 'f:' .. k)
    collect(parent)
  end
end

-- Messages from ``keep`` on of k are about to change or go: every fork reading them first takes them into
-- its own list (and their words into its index), and reads only [0, keep) of k from then on.
local function release(k, keep)
  local words_indexed
  for _, fork in ipairs(forks_of(k)) do
    local at = at_of(fork)
    if at > keep then
      local indexed = in_step(fork)
      local records = read_chain(k, keep, at, mkey)
      prepend_all(mkey(fork), records, 1, #records)
      if indexed then
        if words_indexed == nil then words_indexed = chain_in_step(k) end
        if words_indexed then
          local words = read_chain(k, keep, at, tkey)
          index_messages(fork, words, 1, #words, keep, true)
        else
          leave_index(fork)
        end
      end
      if keep == 0 then
        redis.call('HDEL', hkey(fork), 'parent', 'at')
        redis.call('HDEL', hkey(k), 'f:' .. fork)
        if not chained(fork) then settle_expiry(fork) end
      else
        redis.call('HSET', hkey(fork), 'at', keep)
      end
    end
  end
end

-- Remove what makes a session a session: its hash, summaries, checkpoint and its entries in the index,
-- filter and expiry sets. When Redis has already expired the hash, the filter sets it was in are read from
-- the refs hash.
local function unlist(id)
  local keys
  if redis.call('EXISTS', hkey(id)) == 1 then
    keys = filter_keys(id, true)
  else
    local refs = redis.call('HGET', L.refs, id)
    keys = refs and decode_tags(refs, false) or {}
  end
  redis.call('DEL', hkey(id), skey(id), L.checkpoint .. id)
  redis.call('ZREM', L.index, id)
  redis.call('ZREM', L.expiry, id)
  redis.call('HDEL', L.refs, id)
  for _, key in ipairs(keys) do redis.call('ZREM', key, id) end
end

-- Delete a session that forks still read: its rows and their index entries move to a ghost key (no id, no
-- metadata: a NUL, the incarnation and the time), which its forks read from now on; the ghost keeps only the
-- rows they read and goes with the last of them (collect).
local function ghost(id)
  local now = redis.call('TIME')
  local g = '\0' .. (redis.call('HGET', hkey(id), 'inc') or '') .. ':' .. now[1] .. now[2]
  while redis.call('EXISTS', hkey(g)) == 1 do g = g .. '+' end
  local indexed, total, parent, at = in_step(id), count(id), parent_of(id), at_of(id)
  if indexed then
    for _, term in ipairs(redis.call('SMEMBERS', vkey(id))) do
      if redis.call('EXISTS', pkey(id, term)) == 1 then redis.call('RENAME', pkey(id, term), pkey(g, term)) end
      redis.call('SREM', L.word .. term, id)
      redis.call('SADD', L.word .. term, g)
    end
    for _, key in ipairs({vkey, tkey}) do
      if redis.call('EXISTS', key(id)) == 1 then redis.call('RENAME', key(id), key(g)) end
    end
    redis.call('SREM', L.indexed, id)
    redis.call('HSET', hkey(g), 'ghost', 1, 'ix', total)
  else
    leave_index(id)
    redis.call('HSET', hkey(g), 'ghost', 1)
  end
  if redis.call('EXISTS', mkey(id)) == 1 then redis.call('RENAME', mkey(id), mkey(g)) end
  if parent then
    redis.call('HSET', hkey(g), 'parent', parent, 'at', at)
    redis.call('HDEL', hkey(parent), 'f:' .. id)
    redis.call('HSET', hkey(parent), 'f:' .. g, 1)
  end
  for _, fork in ipairs(forks_of(id)) do
    redis.call('HSET', hkey(g), 'f:' .. fork, 1)
    redis.call('HSET', hkey(fork), 'parent', g)
  end
  unlist(id)
  collect(g)
end

-- Remove every trace of a session (a session forks still read becomes their ghost). Returns 1 if its hash
-- was there.
local function purge(id)
  local existed = redis.call('EXISTS', hkey(id))
  if existed == 1 and #forks_of(id) > 0 then
    ghost(id)
    return 1
  end
  local parent = existed == 1 and parent_of(id)
  unindex_all(id)
  redis.call('DEL', mkey(id))
  unlist(id)
  if parent then
    redis.call('HDEL', hkey(parent), 'f:' .. id)
    collect(parent)
  end
  return existed
end

-- 'live', or 'gone' (missing, or expired by the client's clock though Redis has not dropped it yet).
local function state(id, now)
  if redis.call('EXISTS', hkey(id)) == 0 then return 'gone' end
  local expires = redis.call('HGET', hkey(id), 'expires')
  if expires and tonumber(expires) <= tonumber(now) then return 'gone' end
  return 'live'
end

-- Is the session there? An expired one, or the leftovers of one Redis expired, is purged on sight, so a new
-- session with that id starts from nothing.
local function live(id, now)
  if state(id, now) == 'live' then return true end
  purge(id)
  return false
end

local function bump_updated(id, now)
  local updated = redis.call('HGET', hkey(id), 'updated')
  if (not updated) or tonumber(now) > tonumber(updated) then
    redis.call('HSET', hkey(id), 'updated', now)
  end
end

-- (Re)list the session in the index and its filter sets, most recently updated first (score = -updated).
local function reindex(id)
  local score = '-' .. redis.call('HGET', hkey(id), 'updated')
  redis.call('ZADD', L.index, score, id)
  for _, key in ipairs(filter_keys(id)) do redis.call('ZADD', key, score, id) end
end

-- A key created by this write (a first message or summary) gets the session's remaining lifetime.
local function keep_ttl(id, key)
  local ttl = redis.call('PTTL', hkey(id))
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

local function keep_summaries_within(id, last)
  local all = redis.call('LRANGE', skey(id), 0, -1)
  local keep = {}
  for _, record in ipairs(all) do
    if tonumber(string.match(record, '^(%d+)\n')) <= last then keep[#keep + 1] = record end
  end
  if #keep < #all then
    redis.call('DEL', skey(id))
    push_all(skey(id), keep, 1, #keep)
    keep_ttl(id, skey(id))
  end
end

-- Keep the planner checkpoint of a live session at version (stores/_checkpoints.py), unless a newer one of
-- the same incarnation is kept: 1 kept | 0 not.
local function keep_checkpoint(id, version, data)
  local key = L.checkpoint .. id
  local inc = redis.call('HGET', hkey(id), 'inc') or ''
  local kept = redis.call('HMGET', key, 'version', 'inc')
  if kept[1] and kept[2] == inc and tonumber(kept[1]) > version then return 0 end
  redis.call('DEL', key)
  redis.call('HSET', key, 'version', version, 'inc', inc, 'data', data)
  keep_ttl(id, key)
  return 1
end
"""

# append(id, expected_version, now, incarnation or '', new_incarnation ('': never create), turn_id or '',
#        lease or '', n, record (n of them)..., m, words of the first m records..., checkpoint or '')
#   -> {1, new_version, first_seq, incarnation} | {0, actual_version, actual_incarnation or '', last_turn or ''}
#      | {2, newest lease token or ''} (the lease was lost: stores/_leases.py)
APPEND = r"""
local id, expected, now = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2]
local inc, new_inc, turn, lease = ARGV[A + 3], ARGV[A + 4], ARGV[A + 5], ARGV[A + 6]
if lease ~= '' then
  local newest = redis.call('GET', L.fence .. id)
  if newest ~= lease then return {2, newest or ''} end
end
local version, held, last = 0, false, false
local exists = live(id, now)
if exists then
  version = tonumber(redis.call('HGET', hkey(id), 'version'))
  held = redis.call('HGET', hkey(id), 'inc')
  last = redis.call('HGET', hkey(id), 'turn')
end
if version ~= expected or (inc ~= '' and held and held ~= inc) or (not exists and new_inc == '') then
  return {0, version, held or '', last or ''}
end
if exists then filter_keys(id) end  -- checked before the first write (reindex needs them)
if not exists then
  redis.call('HSET', hkey(id), 'version', 0, 'created', now, 'updated', now, 'inc', new_inc)
  start_index(id)
end
local n = tonumber(ARGV[A + 7])
local start = count(id)
local indexing = in_step(id)
local m = tonumber(ARGV[A + 8 + n])
push_all(mkey(id), ARGV, A + 8, A + 7 + n)
if indexing then
  index_messages(id, ARGV, A + 9 + n, A + 8 + n + m, start)
  redis.call('HSET', hkey(id), 'ix', start + m)  -- behind when m < n: the client sends the rest (index_more)
else
  leave_index(id)
end
if turn ~= '' then redis.call('HSET', hkey(id), 'turn', turn) else redis.call('HDEL', hkey(id), 'turn') end
local new_version = redis.call('HINCRBY', hkey(id), 'version', 1)
bump_updated(id, now)
reindex(id)
keep_ttl(id, mkey(id))
local checkpoint = ARGV[A + 9 + n + m]
if checkpoint and checkpoint ~= '' then keep_checkpoint(id, new_version, checkpoint) end
return {1, new_version, start, redis.call('HGET', hkey(id), 'inc') or ''}
"""

# update(id, now, create, expires_ms, new_incarnation, n_set, field, value, ..., field_to_delete, ...)
#   -> {1, hash_fields, message_count} | {0} | {2, version} (create '2': only the session whose incarnation is
#   new_incarnation, and it is another)
# expires_ms: '' unchanged, '0' cleared, else the new expiry in ms since the epoch.
UPDATE = r"""
local id, now, create, expires_ms, new_inc = ARGV[A], ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], ARGV[A + 4]
local n_set = tonumber(ARGV[A + 5])
local first_set, last_set = A + 6, A + 5 + 2 * n_set
check_fields(first_set, last_set)
local exists = live(id, now)
if exists and create == '2' then
  local held = redis.call('HGET', hkey(id), 'inc')
  if held and held ~= new_inc then return {2, redis.call('HGET', hkey(id), 'version')} end
end
local before = exists and filter_keys(id) or {}
if not exists then
  if create ~= '1' then return {0} end
  redis.call('HSET', hkey(id), 'version', 0, 'created', now, 'updated', now, 'inc', new_inc)
  start_index(id)
end
if n_set > 0 then redis.call('HSET', hkey(id), unpack(ARGV, first_set, last_set)) end
if last_set < #ARGV then redis.call('HDEL', hkey(id), unpack(ARGV, last_set + 1, #ARGV)) end
local after = {}
for _, key in ipairs(filter_keys(id)) do after[key] = true end
for _, key in ipairs(before) do
  if not after[key] then redis.call('ZREM', key, id) end
end
bump_updated(id, now)
reindex(id)
local fields = redis.call('HGETALL', hkey(id))
local total = count(id)
local expires = redis.call('HGET', hkey(id), 'expires')
if expires and tonumber(expires) <= tonumber(now) then
  purge(id)  -- set to a past time: it expires now, as it would anywhere
elseif expires_ms ~= '' and expires_ms ~= '0' then
  sync_expiry(id, expires_ms)
else
  sync_expiry(id, false)
end
return {1, fields, total}
"""

# create(id, now, expires_ms, n_fields, field, value, ..., n_messages, record..., m, words of the first m
#        records..., summary_record...)
#   -> {1} | {0, actual_version}
CREATE = r"""
local id, now, expires_ms = ARGV[A], ARGV[A + 1], ARGV[A + 2]
if live(id, now) then return {0, tonumber(redis.call('HGET', hkey(id), 'version'))} end
local n_fields = tonumber(ARGV[A + 3])
local first_field = A + 4
local last_field = first_field + 2 * n_fields - 1
check_fields(first_field, last_field)
redis.call('HSET', hkey(id), unpack(ARGV, first_field, last_field))
local n_messages = tonumber(ARGV[last_field + 1])
local first_message = last_field + 2
local m = tonumber(ARGV[first_message + n_messages])
local first_words = first_message + n_messages + 1
push_all(mkey(id), ARGV, first_message, first_message + n_messages - 1)
push_all(skey(id), ARGV, first_words + m, #ARGV)
start_index(id)
index_messages(id, ARGV, first_words, first_words + m - 1, 0)
redis.call('HSET', hkey(id), 'ix', m)
reindex(id)
if expires_ms ~= '' then sync_expiry(id, expires_ms) end
local expires = redis.call('HGET', hkey(id), 'expires')
if expires and tonumber(expires) <= tonumber(now) then purge(id) end
return {1}
"""

# truncate(id, to, expected_version, now, incarnation or '')
#   -> {1, new_version} | {0, actual_version} | {-1} (no such session)
TRUNCATE = r"""
local id, to, expected, now = ARGV[A], tonumber(ARGV[A + 1]), tonumber(ARGV[A + 2]), ARGV[A + 3]
local inc = ARGV[A + 4]
if not live(id, now) then return {-1} end
local version = tonumber(redis.call('HGET', hkey(id), 'version'))
local held = redis.call('HGET', hkey(id), 'inc')
if version ~= expected or (inc ~= '' and held and held ~= inc) then return {0, version} end
filter_keys(id)  -- checked before the first write (reindex needs them)
local was_chained = chained(id)
release(id, to)
cut(id, to)
keep_summaries_within(id, to)
redis.call('HDEL', hkey(id), 'turn')
local new_version = redis.call('HINCRBY', hkey(id), 'version', 1)
bump_updated(id, now)
reindex(id)
if was_chained and not chained(id) then settle_expiry(id) end
return {1, new_version}
"""

# fork(id, new_id, at or '', now, new_incarnation)
#   -> {1, at} | {0, actual_version} | {-1} (no source) | {-2, count} (bad at)
# Copy-on-write: the fork's hash points at the storage key holding message at - 1 (the session, or the part
# of its chain it reads from there) and copies the metadata and the summaries inside the prefix; no message.
FORK = r"""
local id, new_id, at, now, new_inc = ARGV[A], ARGV[A + 1], ARGV[A + 2], ARGV[A + 3], ARGV[A + 4]
if not live(id, now) then return {-1} end
local total = count(id)
if at == '' then at = total else at = tonumber(at) end
if at > total then return {-2, total} end
if live(new_id, now) then return {0, tonumber(redis.call('HGET', hkey(new_id), 'version'))} end
filter_keys(id)  -- the fork's tags, checked before the first write
local names = {'title', 'owner', 'model', 'tags', 'system', 'metadata', 'expires'}
local values = redis.call('HMGET', hkey(id), unpack(names))
redis.call('HSET', hkey(new_id), 'version', at > 0 and 1 or 0, 'created', now, 'updated', now, 'inc', new_inc)
for i, name in ipairs(names) do
  if values[i] then redis.call('HSET', hkey(new_id), name, values[i]) end
end
local source = id
if at > 0 then
  local parent = parent_of(source)
  while parent and at <= at_of(source) do  -- read straight from the part that holds the rows
    source = parent
    parent = parent_of(source)
  end
  local first = not chained(source)
  redis.call('HSET', hkey(new_id), 'parent', source, 'at', at)
  redis.call('HSET', hkey(source), 'f:' .. new_id, 1)
  if first and not is_ghost(source) then settle_expiry(source) end  -- no Redis expiry while forks read it
end
local summaries = {}
for _, record in ipairs(redis.call('LRANGE', skey(id), 0, -1)) do
  if tonumber(string.match(record, '^(%d+)\n')) <= at then summaries[#summaries + 1] = record end
end
push_all(skey(new_id), summaries, 1, #summaries)
reindex(new_id)
if at == 0 or chain_in_step(source) then
  start_index(new_id)
  redis.call('HSET', hkey(new_id), 'ix', at)
end
settle_expiry(new_id)
return {1, at}
"""

# read(id, first, last or '', summaries 1/0) -> {hash fields, records [first, last), summaries or {}}: a
# session's messages across its fork chain, in one consistent read (a session without ``parent`` is read with
# a transaction instead: ``_ops._read``).
READ = r"""
local id, first, last = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2]
local total = count(id)
if last == '' then last = total else last = math.min(tonumber(last), total) end
local records = {}
if first < last then records = read_chain(id, first, last, mkey) end
local summaries = {}
if ARGV[A + 3] == '1' then summaries = redis.call('LRANGE', skey(id), 0, -1) end
return {redis.call('HGETALL', hkey(id)), records, summaries}
"""

# read_at(id, seq...) -> the record at each seq (nil past the end), across the fork chain
READ_AT = r"""
local id = ARGV[A]
local total = count(id)
local out = {}
for i = A + 1, #ARGV do
  local seq = tonumber(ARGV[i])
  out[#out + 1] = seq < total and read_chain(id, seq, seq + 1, mkey)[1] or false
end
return out
"""

# summary(id, end, now, record) -> {1} | {-1} (no such session) | {-2, count} (the log is shorter than end)
SUMMARY = r"""
local id, last, now, record = ARGV[A], tonumber(ARGV[A + 1]), ARGV[A + 2], ARGV[A + 3]
if not live(id, now) then return {-1} end
local total = count(id)
if last > total then return {-2, total} end
redis.call('RPUSH', skey(id), record)
keep_ttl(id, skey(id))
return {1}
"""

# delete(id) -> 1 if the session existed, else 0
DELETE = r"""
return purge(ARGV[A])
"""

# list(sorted_set, now, offset, limit, owner_filter_flag, owner, after_score, after_id)
#   -> {{id, hash_fields, message_count}, ...}
# after_score '' lists from the start; else the walk starts at that score (keyset: O(log n + page)) and skips
# the ties up to after_id. Ties are in byte order (ZSET); Lua's own string < follows the locale, so bytes
# are compared one by one.
LIST = r"""
local zset, now, offset, limit = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2]), tonumber(ARGV[A + 3])
local want_owner, owner = ARGV[A + 4] == '1', ARGV[A + 5]
local after_score, after_id = ARGV[A + 6], ARGV[A + 7]
local low, bound = '-inf', nil
if after_score ~= '' then low, bound = after_score, tonumber(after_score) end
local function bytes_after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local out, stale = {}, {}
local skipped, position, batch = 0, 0, 100
while #out < limit do
  local rows = redis.call('ZRANGEBYSCORE', zset, low, '+inf', 'WITHSCORES', 'LIMIT', position, batch)
  if #rows == 0 then break end
  for i = 1, #rows, 2 do
    local id = rows[i]
    if bound ~= nil and tonumber(rows[i + 1]) == bound and not bytes_after(id, after_id) then
      -- the cursor itself, or a tie before it
    elseif state(id, now) ~= 'live' then
      stale[#stale + 1] = id
    elseif (not want_owner) or redis.call('HGET', hkey(id), 'owner') == owner then
      if skipped < offset then
        skipped = skipped + 1
      elseif #out < limit then
        out[#out + 1] = {id, redis.call('HGETALL', hkey(id)), count(id)}
      end
    end
  end
  position = position + batch
end
for _, id in ipairs(stale) do purge(id) end  -- after the walk, so positions did not shift under it
return out
"""

# search(sorted_set, session_id or '', term...) -> {{id, score or '', indexed 1/0, {key, bound, ...}}, ...}: the
# sessions that may hold every term, for the client to order (score, then id) and read. A message is stored
# once, under one storage key, and is a message of every fork reading it: for each session the storage keys
# whose own messages may hold the terms, each with the bound below which the session reads them (-1: all). A
# session of ``sorted_set`` whose chain is not all in the index (written before it existed) is returned with
# indexed 0, for the client to scan. With a session id, only that session, whatever the sorted set says (the
# client checks the hash).
SEARCH = r"""
local zset, only = ARGV[A], ARGV[A + 1]
local words = {}
for i = A + 2, #ARGV do words[#words + 1] = L.word .. ARGV[i] end
local function narrower(bound, at) if bound < 0 or at < bound then return at end return bound end
if only ~= '' then
  if not chain_in_step(only) then return {{only, '', 0, {}}} end
  local sources, k, bound = {}, only, -1
  while k do
    local holds = true
    for _, key in ipairs(words) do
      if redis.call('SISMEMBER', key, k) == 0 then holds = false end
    end
    if holds then
      sources[#sources + 1] = k
      sources[#sources + 1] = bound
    end
    bound = narrower(bound, at_of(k))
    k = parent_of(k)
  end
  if #sources == 0 then return {} end
  return {{only, '', 1, sources}}
end
local rows, out = {}, {}
local function row_of(sid)
  if rows[sid] == nil then
    rows[sid] = false
    local score = redis.call('ZSCORE', zset, sid)
    if score then
      rows[sid] = {sid, score, chain_in_step(sid) and 1 or 0, {}}
      out[#out + 1] = rows[sid]
    end
  end
  return rows[sid]
end
-- k's own messages may hold the terms of a hit: of k, and of every fork reading them, down the forks' forks
local function visit(k, source, first, bound)
  local row = row_of(k)
  if row and row[3] == 1 then
    row[4][#row[4] + 1] = source
    row[4][#row[4] + 1] = bound
  end
  for _, fork in ipairs(forks_of(k)) do
    local narrowed = narrower(bound, at_of(fork))
    if narrowed > first then visit(fork, source, first, narrowed) end
  end
end
for _, k in ipairs(redis.call('SINTER', unpack(words))) do visit(k, k, at_of(k), -1) end
if redis.call('ZCARD', L.index) > redis.call('SCARD', L.indexed) then
  local legacy = redis.call('ZDIFF', 2, zset, L.indexed)
  for _, sid in ipairs(legacy) do
    local row = row_of(sid)
    if row then row[3] = 0 end
  end
end
return out
"""

# index_session(id, now, version, n, words of the first m of its n own messages...) -> 1 indexed | 0 nothing to
#   do (gone, or indexed already) | -1 the session changed since the client read it (read it again)
INDEX_SESSION = r"""
local id, now, version, n = ARGV[A], ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
if state(id, now) ~= 'live' or in_step(id) then return 0 end
if redis.call('HGET', hkey(id), 'version') ~= version or redis.call('LLEN', mkey(id)) ~= n then return -1 end
local parent = parent_of(id)
if parent and not chain_in_step(parent) then return 0 end  -- what it reads is not indexed: it stays scanned
unindex_all(id)  -- anything an index out of step left
start_index(id)
index_messages(id, ARGV, A + 4, #ARGV, at_of(id))
redis.call('HSET', hkey(id), 'ix', at_of(id) + #ARGV - A - 3)
return 1
"""

# index_more(id, version, incarnation, from, words of the messages from seq ``from`` on...) -> 1 indexed | 0 not
# (the session was written meanwhile, which dropped its index: it is scanned until rebuild_search_index). A
# long write indexes its first INDEX_CHUNK messages in its own script and leaves the rest to this one, a chunk
# at a time, so that no script holds Redis (and the client's timeout) for seconds: until then the session's
# index is behind (``ix`` below its count) and search scans it.
INDEX_MORE = r"""
local id, version, inc, from = ARGV[A], ARGV[A + 1], ARGV[A + 2], tonumber(ARGV[A + 3])
local h = hkey(id)
if redis.call('HGET', h, 'version') ~= version or (redis.call('HGET', h, 'inc') or '') ~= inc then return 0 end
if redis.call('SISMEMBER', L.indexed, id) == 0 or tonumber(redis.call('HGET', h, 'ix')) ~= from then return 0 end
local last = math.min(#ARGV, A + 3 + count(id) - from)
index_messages(id, ARGV, A + 4, last, from)
redis.call('HSET', h, 'ix', from + last - A - 3)
return 1
"""

# purge_expired(now, batch) -> how many sessions were purged in this batch
PURGE = r"""
local now, batch = ARGV[A], tonumber(ARGV[A + 1])
local ids = redis.call('ZRANGEBYSCORE', L.expiry, '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(ids) do purge(id) end
return #ids
"""

# acquire_lease(id, ttl_ms) -> the new fencing token | nil while a lease is held. The holder key expires by
# itself (PX); the counter never does, so tokens keep growing across releases and deletes.
ACQUIRE_LEASE = r"""
local id, ttl = ARGV[A], ARGV[A + 1]
if not redis.call('SET', L.lease .. id, '', 'NX', 'PX', ttl) then return false end
local token = redis.call('INCR', L.fence .. id)
redis.call('SET', L.lease .. id, token, 'PX', ttl)
return token
"""

# release_lease(id, token): free the lease if it is still this token's.
RELEASE_LEASE = r"""
if redis.call('GET', L.lease .. ARGV[A]) == ARGV[A + 1] then redis.call('DEL', L.lease .. ARGV[A]) end
return 1
"""

# checkpoint(id, now, version, data) -> 1 kept | 0 not (no such session, or a newer checkpoint kept). The
# checkpoint names the incarnation it was kept for (a purge deletes it with the session, and one left by a
# session that Redis expired on its own is not read for the next session under that id).
CHECKPOINT = r"""
local id, now, version, data = ARGV[A], ARGV[A + 1], tonumber(ARGV[A + 2]), ARGV[A + 3]
if not live(id, now) then return 0 end
return keep_checkpoint(id, version, data)
"""

SCRIPTS: dict[str, str] = {
    name: PRELUDE + body
    for name, body in {
        "append": APPEND,
        "update": UPDATE,
        "create": CREATE,
        "truncate": TRUNCATE,
        "fork": FORK,
        "read": READ,
        "read_at": READ_AT,
        "summary": SUMMARY,
        "delete": DELETE,
        "checkpoint": CHECKPOINT,
        "list": LIST,
        "search": SEARCH,
        "index_session": INDEX_SESSION,
        "index_more": INDEX_MORE,
        "purge": PURGE,
        "acquire_lease": ACQUIRE_LEASE,
        "release_lease": RELEASE_LEASE,
    }.items()
}
