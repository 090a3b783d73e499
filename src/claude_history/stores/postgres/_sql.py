"""Every SQL statement of the PostgreSQL store, in one place for the sync and async stores.

Statements are templates with ``{s}`` standing for the quoted schema; ``Statements(schema)`` fills it in once
per store. Message content is kept in ``json`` columns, not ``jsonb``: ``json`` stores the text exactly as
written (key order, duplicate keys, number spelling) while ``jsonb`` reorders keys, and the stored log must
round-trip byte for byte (thinking signatures are verified against it). The content stays queryable with the
``->`` operators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "COUNT_COLUMN",
    "KEY_COLUMN",
    "MIGRATIONS",
    "SESSION_COLUMNS",
    "Migration",
    "Statements",
    "advisory_lock_key",
    "quote_ident",
]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# Numbered, append-only. Never edit a released migration: add a new one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sessions, messages, summaries",
        """
CREATE TABLE {s}.sessions (
    id            text PRIMARY KEY,
    version       bigint NOT NULL DEFAULT 0,
    message_count integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    title         text,
    owner         text,
    tags          text[] NOT NULL DEFAULT '{}',
    model         text,
    system        json,
    expires_at    timestamptz,
    metadata      json NOT NULL DEFAULT '{}'
);
CREATE INDEX sessions_recent_idx ON {s}.sessions (updated_at DESC, id COLLATE "C");
CREATE INDEX sessions_owner_idx ON {s}.sessions (owner, updated_at DESC) WHERE owner IS NOT NULL;
CREATE INDEX sessions_tags_idx ON {s}.sessions USING gin (tags);
CREATE INDEX sessions_expires_idx ON {s}.sessions (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE {s}.messages (
    session_id text NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
    seq        integer NOT NULL,
    role       text NOT NULL,
    message    json NOT NULL,
    model      text,
    usage      json,
    created_at timestamptz NOT NULL,
    words      tsvector NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX messages_words_idx ON {s}.messages USING gin (words);

CREATE TABLE {s}.summaries (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id text NOT NULL REFERENCES {s}.sessions (id) ON DELETE CASCADE,
    start_seq  integer NOT NULL,
    end_seq    integer NOT NULL,
    text       json NOT NULL,
    model      text,
    usage      json,
    created_at timestamptz NOT NULL
);
CREATE INDEX summaries_session_idx ON {s}.summaries (session_id, id);
""",
    ),
    Migration(
        2,
        "incarnations and idempotent commits",
        """
ALTER TABLE {s}.sessions ADD COLUMN IF NOT EXISTS incarnation text, ADD COLUMN IF NOT EXISTS last_turn text;
""",
    ),
    Migration(
        3,
        "turn leases",
        """
CREATE TABLE IF NOT EXISTS {s}.leases (
    session_id text PRIMARY KEY,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
""",
    ),
    Migration(
        4,
        "planner checkpoints",
        """
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    session_id text PRIMARY KEY REFERENCES {s}.sessions (id) ON DELETE CASCADE,
    version    bigint NOT NULL,
    data       json NOT NULL
);
""",
    ),
    Migration(
        5,
        "copy-on-write forks",
        # A message row belongs to a storage key (messages.session_id holds sessions.key, not the id): a deleted
        # session that forks still read keeps its key and rows under a ghost id (see ``drop_session``) while its
        # id is free for a new session. Sessions written before keep key = id. A fork reads messages
        # [0, fork_at) from parent_key (through the parent's own parent in turn, ``segments``) and holds
        # [fork_at, message_count) in its own rows; an unforked session has no parent and fork_at 0.
        """
ALTER TABLE {s}.sessions ADD COLUMN IF NOT EXISTS key text, ADD COLUMN IF NOT EXISTS parent_key text,
    ADD COLUMN IF NOT EXISTS fork_at integer NOT NULL DEFAULT 0;
UPDATE {s}.sessions SET key = id WHERE key IS NULL;
ALTER TABLE {s}.sessions ALTER COLUMN key SET NOT NULL, ALTER COLUMN key SET DEFAULT gen_random_uuid()::text,
    ADD CONSTRAINT sessions_key_unique UNIQUE (key);
CREATE INDEX IF NOT EXISTS sessions_parent_idx ON {s}.sessions (parent_key) WHERE parent_key IS NOT NULL;
ALTER TABLE {s}.messages DROP CONSTRAINT IF EXISTS messages_session_id_fkey,
    ADD CONSTRAINT messages_session_key_fkey FOREIGN KEY (session_id) REFERENCES {s}.sessions (key) ON DELETE CASCADE;

-- Where messages [first, last) of the session with key k are stored: (key, lo, hi) runs, the session's own first.
CREATE FUNCTION {s}.segments(k text, first integer, last integer)
RETURNS TABLE (seg_key text, seg_lo integer, seg_hi integer) LANGUAGE plpgsql STABLE ROWS 2 AS $$
DECLARE
    parent text;
    at integer;
    cur text := k;
BEGIN
    SELECT s.parent_key, s.fork_at INTO parent, at FROM {s}.sessions s WHERE s.key = cur;
    WHILE first < last LOOP
        seg_lo := CASE WHEN parent IS NULL THEN first ELSE greatest(first, at) END;
        IF seg_lo < last THEN
            seg_key := cur;
            seg_hi := last;
            RETURN NEXT;
        END IF;
        EXIT WHEN parent IS NULL OR first >= at;
        last := least(last, at);
        cur := parent;
        SELECT s.parent_key, s.fork_at INTO parent, at FROM {s}.sessions s WHERE s.key = cur;
    END LOOP;
END $$;

-- After a fork of k went or reads less of it: a ghost k (a deleted session kept for its forks) drops the rows
-- none of them reads any more, and goes whole when none is left.
CREATE FUNCTION {s}.collect(k text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
    keep integer;
BEGIN
    SELECT s.version, s.message_count, s.parent_key, s.fork_at INTO r FROM {s}.sessions s WHERE s.key = k FOR UPDATE;
    IF NOT FOUND OR r.version <> -1 THEN
        RETURN;
    END IF;
    SELECT max(s.fork_at) INTO keep FROM {s}.sessions s WHERE s.parent_key = k;
    IF keep IS NULL THEN
        PERFORM {s}.drop_session(k);
    ELSIF keep < r.message_count THEN
        DELETE FROM {s}.messages WHERE session_id = k AND seq >= keep;
        UPDATE {s}.sessions SET message_count = keep, fork_at = least(fork_at, keep) WHERE key = k;
        IF r.parent_key IS NOT NULL AND keep < r.fork_at THEN
            PERFORM {s}.collect(r.parent_key);
        END IF;
    END IF;
END $$;

-- Delete a session. One that forks still read becomes their data instead: its id (a ghost id, longer than any
-- id a caller may give), metadata, summaries and checkpoint go now, its rows stay until the last fork is gone.
CREATE FUNCTION {s}.drop_session(k text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT s.id, s.parent_key INTO r FROM {s}.sessions s WHERE s.key = k FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM {s}.sessions s WHERE s.parent_key = k) THEN
        DELETE FROM {s}.summaries WHERE session_id = r.id;
        DELETE FROM {s}.checkpoints WHERE session_id = r.id;
        UPDATE {s}.sessions SET id = 'ghost:' || md5(k) || repeat('~', 1001), version = -1, title = NULL,
            owner = NULL, tags = '{}', model = NULL, system = NULL, expires_at = NULL, metadata = '{}',
            incarnation = NULL, last_turn = NULL WHERE key = k;
        PERFORM {s}.collect(k);
    ELSE
        DELETE FROM {s}.sessions WHERE key = k;
        IF r.parent_key IS NOT NULL THEN
            PERFORM {s}.collect(r.parent_key);
        END IF;
    END IF;
END $$;

-- Cut session k to messages [0, keep): every fork reading messages from keep on first copies them into its own
-- rows and reads only [0, keep) of k; k itself reads less of its parent if keep is below its fork point.
CREATE FUNCTION {s}.cut_session(k text, keep integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
    r record;
BEGIN
    FOR c IN SELECT s.key, s.fork_at FROM {s}.sessions s WHERE s.parent_key = k AND s.fork_at > keep
             ORDER BY s.key FOR UPDATE LOOP
        INSERT INTO {s}.messages (session_id, seq, role, message, model, usage, created_at, words)
            SELECT c.key, m.seq, m.role, m.message, m.model, m.usage, m.created_at, m.words
            FROM {s}.segments(k, keep, c.fork_at) g
            JOIN {s}.messages m ON m.session_id = g.seg_key AND m.seq >= g.seg_lo AND m.seq < g.seg_hi;
        UPDATE {s}.sessions SET fork_at = keep, parent_key = CASE WHEN keep = 0 THEN NULL ELSE parent_key END
            WHERE key = c.key;
    END LOOP;
    DELETE FROM {s}.messages WHERE session_id = k AND seq >= keep;
    SELECT s.parent_key, s.fork_at INTO r FROM {s}.sessions s WHERE s.key = k;
    IF r.parent_key IS NOT NULL AND keep < r.fork_at THEN
        UPDATE {s}.sessions SET fork_at = keep, parent_key = CASE WHEN keep = 0 THEN NULL ELSE parent_key END
            WHERE key = k;
        PERFORM {s}.collect(r.parent_key);
    END IF;
END $$;
""",
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

# Columns of a session row, in the order ``_ops.info_from_row`` reads them, then its storage key (migration 5).
SESSION_COLUMNS = (
    "id, version, message_count, created_at, updated_at, title, owner, tags, model, system::text,"
    " expires_at, metadata::text, incarnation, key"
)
# Where ``_ops`` finds a session row's message count and storage key (by name: the row is positional).
_SESSION_NAMES = [column.strip().split("::")[0] for column in SESSION_COLUMNS.split(",")]
COUNT_COLUMN = _SESSION_NAMES.index("message_count")
KEY_COLUMN = _SESSION_NAMES.index("key")
GHOST = -1  # the version of a deleted session kept only as its forks' data (migration 5, ``drop_session``)
# Messages [start, end) of the session with id %(id)s, as runs of stored rows (``segments``), in order.
_RUNS = (
    "SELECT g.seg_key, g.seg_lo, g.seg_hi FROM {s}.sessions s"
    " CROSS JOIN LATERAL {s}.segments(s.key, %(start)s, %(end)s) g WHERE s.id = %(id)s ORDER BY g.seg_lo"
)
# The stored rows of the runs of session key %(key)s that cover [start, end), in any order.
_IN_RUNS = (
    "{s}.segments(%(key)s, %(start)s, %(end)s) g JOIN {s}.messages m"
    " ON m.session_id = g.seg_key AND m.seq >= g.seg_lo AND m.seq < g.seg_hi"
)
_LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"

# update_session: argument name -> SQL assignment (the only columns it may change)
UPDATE_ASSIGNMENTS = {
    "title": "title = %(title)s",
    "owner": "owner = %(owner)s",
    "tags": "tags = %(tags)s",
    "model": "model = %(model)s",
    "system": "system = %(system)s::json",
    "expires_at": "expires_at = %(expires_at)s",
    "metadata": "metadata = %(metadata)s::json",
}


def quote_ident(name: str) -> str:
    """A safely quoted SQL identifier (any text is allowed in a quoted identifier except NUL)."""
    return '"' + name.replace('"', '""') + '"'


def advisory_lock_key(schema: str) -> int:
    """A stable signed 64-bit key per schema: migrations of different schemas do not wait for each other."""
    digest = hashlib.blake2b(f"claude_history:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Statements:
    """The statements of one schema. Parameters are named (``%(id)s``) so every caller passes a dict."""

    def __init__(self, schema: str) -> None:
        s = quote_ident(schema)

        def fill(template: str) -> str:
            return template.replace("{s}", s)

        self.schema = s
        self.fill = fill

        # -- migrations (run on an autocommit connection holding the advisory lock)
        self.lock = "SELECT pg_advisory_lock(%(key)s::bigint)"
        self.unlock = "SELECT pg_advisory_unlock(%(key)s::bigint)"
        self.create_schema = fill("CREATE SCHEMA IF NOT EXISTS {s}")
        self.create_migrations = fill(
            "CREATE TABLE IF NOT EXISTS {s}.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.applied_versions = fill("SELECT version FROM {s}.schema_migrations ORDER BY version")
        self.record_migration = fill("INSERT INTO {s}.schema_migrations (version, name) VALUES (%(version)s, %(name)s)")
        self.migrations = [(m.version, m.name, fill(m.sql)) for m in MIGRATIONS]

        # -- sessions
        self.snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        self.get_session = fill(f"SELECT {SESSION_COLUMNS} FROM {{s}}.sessions WHERE id = %(id)s AND {_LIVE}")
        self.lock_session = self.get_session + " FOR UPDATE"
        self.live_version = fill(f"SELECT version FROM {{s}}.sessions WHERE id = %(id)s AND {_LIVE}")
        # -- turn leases (stores/_leases.py): the database's clock decides expiry, the same for every server
        self.acquire_lease = fill(
            "INSERT INTO {s}.leases AS l (session_id, token, expires_at)"
            " VALUES (%(id)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s))"
            " ON CONFLICT (session_id) DO UPDATE SET token = l.token + 1, expires_at = excluded.expires_at"
            " WHERE l.expires_at <= clock_timestamp() RETURNING token"
        )
        self.release_lease = fill(
            "UPDATE {s}.leases SET expires_at = '-infinity' WHERE session_id = %(id)s AND token = %(token)s"
        )
        # Held until the commit: a lease taken meanwhile waits for it, so it sees the turn committed.
        self.newest_lease = fill("SELECT token FROM {s}.leases WHERE session_id = %(id)s FOR SHARE")
        self.append_state = fill(
            f"SELECT version, incarnation, last_turn FROM {{s}}.sessions WHERE id = %(id)s AND {_LIVE}"
        )
        # Expired is the same as absent: writers remove an expired session on sight before touching the id.
        # Every delete goes through ``drop_session``: a session that forks read stays as their data.
        self.drop_expired = fill(
            "SELECT {s}.drop_session(key) FROM {s}.sessions WHERE id = %(id)s AND expires_at <= %(now)s"
        )
        self.create_empty = fill(
            "INSERT INTO {s}.sessions (id, version, message_count, created_at, updated_at, incarnation)"
            " VALUES (%(id)s, 0, 0, %(now)s, %(now)s, %(incarnation)s) ON CONFLICT (id) DO NOTHING"
        )
        self.create_session = fill(
            "INSERT INTO {s}.sessions (id, version, message_count, created_at, updated_at, title, owner,"
            " tags,"
            " model, system, expires_at, metadata, incarnation) VALUES (%(id)s, %(version)s, %(message_count)s,"
            " %(created_at)s, %(updated_at)s, %(title)s, %(owner)s, %(tags)s, %(model)s, %(system)s::json,"
            " %(expires_at)s, %(metadata)s::json, %(incarnation)s) ON CONFLICT (id) DO NOTHING RETURNING key"
        )
        self.delete_session = fill("SELECT {s}.drop_session(key) FROM {s}.sessions WHERE id = %(id)s")
        self.purge_expired = fill("SELECT {s}.drop_session(key) FROM {s}.sessions WHERE expires_at <= %(now)s")

        # -- append: compare-and-swap on the version (and the incarnation, when given), then one multi-row
        # insert (O(turn), not O(history)). Version 0 is a missing session (created here) or an empty one from
        # update_session(create=True). When the swap fails, ``_cas.append_allowed`` decides from
        # ``append_state`` whether it is a conflict or this very turn committed already.
        same_incarnation = (
            "(%(incarnation)s::text IS NULL OR {t}incarnation IS NULL OR {t}incarnation = %(incarnation)s)"
        )
        append_create = (
            "INSERT INTO {s}.sessions AS t (id, version, message_count, created_at, updated_at, incarnation,"
            " last_turn) VALUES (%(id)s, 1, %(n)s, %(now)s, %(now)s, %(new_incarnation)s, %(turn)s)"
            " ON CONFLICT (id) DO UPDATE SET version = t.version + 1,"
            " message_count = t.message_count + EXCLUDED.message_count,"
            " updated_at = greatest(t.updated_at, EXCLUDED.updated_at), last_turn = EXCLUDED.last_turn"
            f" WHERE t.version = 0 AND {same_incarnation.replace('{t}', 't.')}"
            " RETURNING t.message_count - %(n)s AS start, t.key"
        )
        append_update = (
            "UPDATE {s}.sessions SET version = version + 1, message_count = message_count + %(n)s,"
            " updated_at = greatest(updated_at, %(now)s), last_turn = %(turn)s"
            f" WHERE id = %(id)s AND version = %(expected)s AND {_LIVE} AND {same_incarnation.replace('{t}', '')}"
            " RETURNING message_count - %(n)s AS start, key"
        )
        # The swap and the turn's rows in one statement (the rows are inserted only when the swap matched,
        # numbered from the count it returns): with the commit sent alongside, an append waits for the server
        # once. ``seq`` of each row is the session's count before the turn plus its position in the turn.
        insert_rows = (
            ", rows AS (INSERT INTO {s}.messages (session_id, seq, role, message, model, usage, created_at, words)"
            " SELECT swap.key, swap.start + m.pos - 1, m.role, m.message::json, m.model, m.usage::json,"
            " m.created_at, array_to_tsvector(m.words::text[])"
            " FROM swap, unnest(%(role)b::text[], %(message)b::text[], %(model)b::text[], %(usage)b::text[],"
            " %(created_at)b::timestamptz[], %(words)b::text[])"
            " WITH ORDINALITY AS m (role, message, model, usage, created_at, words, pos))"
        )
        # The planner checkpoint of the new version, kept in the same statement when the swap matched.
        keep_checkpoint = (
            ", kept AS (INSERT INTO {s}.checkpoints AS c (session_id, version, data)"
            " SELECT %(id)s, %(cp_version)s, %(cp_data)s::json FROM swap"
            " ON CONFLICT (session_id) DO UPDATE SET version = excluded.version, data = excluded.data"
            " WHERE c.version <= excluded.version)"
        )

        def appending(swap: str, checkpoint: bool) -> str:
            tail = insert_rows + (keep_checkpoint if checkpoint else "") + " SELECT start, key FROM swap"
            return fill("WITH swap AS (" + swap + ")" + tail)

        # (creates the session, keeps a checkpoint) -> statement
        self.append = {
            (create, checkpoint): appending(append_create if create else append_update, checkpoint)
            for create in (False, True)
            for checkpoint in (False, True)
        }

        self.insert_messages = fill(  # a session's rows at known positions (``create``: imports, forks)
            "INSERT INTO {s}.messages (session_id, seq, role, message, model, usage, created_at, words)"
            " SELECT %(key)s, m.seq, m.role, m.message::json, m.model, m.usage::json, m.created_at,"
            " array_to_tsvector(m.words::text[])"
            " FROM unnest(%(seq)b::integer[], %(role)b::text[], %(message)b::text[], %(model)b::text[],"
            " %(usage)b::text[], %(created_at)b::timestamptz[], %(words)b::text[])"
            " AS m (seq, role, message, model, usage, created_at, words)"
        )

        # -- reads
        # Rows as _messages.decode_messages reads them; seqs run 0, 1, ... without a gap, so the position is
        # the seq.
        self.messages_page = fill(  # a page of at most %(limit)s rows of one key, from the primary key's order
            "SELECT message::text, model, usage::text, created_at FROM {s}.messages"
            " WHERE session_id = %(key)s AND seq >= %(start)s AND seq < %(end)s ORDER BY seq LIMIT %(limit)s"
        )
        # The first page of the session's own rows, sent with ``runs`` before its key is known (one round trip).
        self.own_page = fill(
            "SELECT message::text, model, usage::text, created_at FROM {s}.messages"
            " WHERE session_id = (SELECT key FROM {s}.sessions WHERE id = %(id)s)"
            " AND seq >= %(start)s AND seq < %(end)s ORDER BY seq LIMIT %(limit)s"
        )
        self.runs = fill(_RUNS)
        self.usage_log = fill(
            f"SELECT m.seq, m.model, m.usage::text, m.created_at FROM {_IN_RUNS}"
            " WHERE m.usage IS NOT NULL ORDER BY m.seq"
        )
        self.message_range = fill(f"SELECT m.message::text FROM {_IN_RUNS} ORDER BY m.seq")
        self.summaries = fill(
            "SELECT start_seq, end_seq, text::text, model, usage::text, created_at FROM {s}.summaries"
            " WHERE session_id = %(id)s ORDER BY id"
        )
        # -- planner checkpoints (stores/_checkpoints.py): one per live session, never replaced by an older one
        self.load_checkpoint = fill(
            "SELECT c.version, c.data::text FROM {s}.checkpoints c JOIN {s}.sessions ON sessions.id = c.session_id"
            f" WHERE c.session_id = %(id)s AND {_LIVE}"
        )
        self.save_checkpoint = fill(
            "INSERT INTO {s}.checkpoints AS c (session_id, version, data)"
            f" SELECT id, %(version)s, %(data)s::json FROM {{s}}.sessions WHERE id = %(id)s AND {_LIVE}"
            " ON CONFLICT (session_id) DO UPDATE SET version = excluded.version, data = excluded.data"
            " WHERE c.version <= excluded.version"
        )
        self.insert_summary = fill(
            "INSERT INTO {s}.summaries (session_id, start_seq, end_seq, text, model, usage, created_at)"
            " VALUES (%(id)s, %(start)s, %(end)s, %(text)s::json, %(model)s, %(usage)s::json, %(created_at)s)"
        )

        # -- rewind (the generic rewind computes the target; this is the CAS truncation)
        self.truncate_session = fill(
            "UPDATE {s}.sessions SET version = version + 1, message_count = %(to)s,"
            " updated_at = greatest(updated_at, %(now)s), last_turn = NULL"
            f" WHERE id = %(id)s AND version = %(expected)s AND {_LIVE}"
            " AND (%(incarnation)s::text IS NULL OR incarnation IS NULL OR incarnation = %(incarnation)s)"
            " RETURNING version, key"
        )
        self.truncate_messages = fill("SELECT {s}.cut_session(%(key)s, %(to)s)")
        self.truncate_summaries = fill("DELETE FROM {s}.summaries WHERE session_id = %(id)s AND end_seq > %(to)s")

        # -- fork: copy-on-write, the fork's row points at the session's key (migration 5); no message is copied
        self.fork_session = fill(
            "INSERT INTO {s}.sessions (id, version, message_count, created_at, updated_at, title, owner,"
            " tags, model, system, expires_at, metadata, incarnation, parent_key, fork_at)"
            " SELECT %(new_id)s, %(version)s, %(at)s, %(now)s, %(now)s, title, owner, tags, model, system,"
            " expires_at, metadata, %(incarnation)s, CASE WHEN %(at)s > 0 THEN key END, %(at)s"
            " FROM {s}.sessions WHERE id = %(id)s ON CONFLICT (id) DO NOTHING RETURNING 1"
        )
        self.fork_summaries = fill(
            "INSERT INTO {s}.summaries (session_id, start_seq, end_seq, text, model, usage, created_at)"
            " SELECT %(new_id)s, start_seq, end_seq, text, model, usage, created_at FROM {s}.summaries"
            " WHERE session_id = %(id)s AND end_seq <= %(at)s ORDER BY id"
        )

        # -- search: the tsvector holds the words ``_search_text.search_terms`` sees; the query is their AND.
        # The owner filter is in the join, before LIMIT.
        self.search_all = self._search(session=False, owner=False)
        self.search_session = self._search(session=True, owner=False)
        self.search_owner = self._search(session=False, owner=True)
        self.search_session_owner = self._search(session=True, owner=True)

    def _search(self, *, session: bool, owner: bool) -> str:
        conditions = ["(s.expires_at IS NULL OR s.expires_at > %(now)s)"]
        if owner:
            conditions.append("s.owner = %(owner)s")
        if session:  # the rows the session reads, wherever they are stored
            return self.fill(
                "SELECT s.id, m.seq, m.role, m.message::text FROM {s}.sessions s CROSS JOIN LATERAL"
                " {s}.segments(s.key, 0, s.message_count) g JOIN {s}.messages m"
                " ON m.session_id = g.seg_key AND m.seq >= g.seg_lo AND m.seq < g.seg_hi"
                f" WHERE s.id = %(id)s AND m.words @@ %(query)s::tsquery AND {' AND '.join(conditions)}"
                " ORDER BY m.seq LIMIT %(limit)s"
            )
        # A hit in a row is also a hit of every fork that reads the row (fork_at above its seq), and of their
        # forks in turn: the recursive part walks down from the key that stores the row (``src``). Only the
        # positions travel until the page is chosen; then the page's messages are read.
        order = 'updated_at DESC, id COLLATE "C", seq'
        return self.fill(
            "WITH RECURSIVE holder (key, seq, src) AS ("
            " SELECT m.session_id, m.seq, m.session_id FROM {s}.messages m WHERE m.words @@ %(query)s::tsquery"
            " UNION ALL SELECT c.key, h.seq, h.src FROM holder h"
            " JOIN {s}.sessions c ON c.parent_key = h.key AND c.fork_at > h.seq),"
            " page AS (SELECT s.id, s.updated_at, h.seq, h.src FROM holder h JOIN {s}.sessions s ON s.key = h.key"
            f" WHERE s.version <> {GHOST} AND {' AND '.join(conditions)} ORDER BY {order} LIMIT %(limit)s)"
            " SELECT p.id, p.seq, m.role, m.message::text FROM page p"
            " JOIN {s}.messages m ON m.session_id = p.src AND m.seq = p.seq"
            ' ORDER BY p.updated_at DESC, p.id COLLATE "C", p.seq'
        )

    def update_session(self, fields: Iterable[str]) -> str:
        assignments = ["updated_at = greatest(updated_at, %(now)s)"]
        assignments += [UPDATE_ASSIGNMENTS[name] for name in fields]
        return self.fill(
            f"UPDATE {{s}}.sessions SET {', '.join(assignments)} WHERE id = %(id)s"
            " AND (%(pinned)s::text IS NULL OR incarnation IS NULL OR incarnation = %(pinned)s)"
            f" RETURNING {SESSION_COLUMNS}"
        )

    def list_sessions(self, *, owner: bool, tag: bool, after: bool = False) -> str:
        conditions = [_LIVE, f"version <> {GHOST}"]
        if after:  # keyset: an index range scan that starts right after the cursor, O(page) not O(offset)
            conditions.append(
                '(updated_at < %(after_at)s OR (updated_at = %(after_at)s AND id COLLATE "C" > %(after_id)s))'
            )
        if owner:
            conditions.append("owner = %(owner)s")
        if tag:
            conditions.append("tags @> ARRAY[%(tag)s]::text[]")
        return self.fill(
            f"SELECT {SESSION_COLUMNS} FROM {{s}}.sessions WHERE {' AND '.join(conditions)}"
            ' ORDER BY updated_at DESC, id COLLATE "C" LIMIT %(limit)s OFFSET %(offset)s'
        )
