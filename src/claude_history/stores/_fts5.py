"""Whether an SQLite FTS5 index's structure record describes the index that is really on disk: the cheap part of
FTS5's own ``integrity-check``, run each time an SQLite store is opened.

FTS5 keeps, in row 10 of its ``_data`` table, a structure record: the levels of the index and, for each segment,
its id and the range of its leaf pages; the pages themselves are rows whose id encodes the segment id and the
page number. A record that does not parse is caught by any query. One that parses but is wrong (a copy from an
earlier state of the file, an empty index's, a segment's page range cut short) is not: searches then silently
miss whatever the record does not name, and the next write fails with "constraint failed" or "database disk
image is malformed". The full ``integrity-check`` reads the whole index (and, for external content, every
row's text): far too slow for every open. This check reads the record and a handful of rows per segment:

* the segments named by the record are exactly the segments that have pages (no page left unnamed, no segment
  without pages);
* each segment's first and last leaf page are where the record says, with none beyond.

A whole index put back from an earlier state (its record and pages consistent, the newer rows missing) passes;
only the full check, which reads every row's text, finds that.

On-disk format: ``ext/fts5/fts5_index.c`` (``fts5StructureDecode``, ``FTS5_SEGMENT_ROWID``)."""

from __future__ import annotations

import sqlite3

__all__ = ["STRUCTURE_ROWID", "structure_is_sound"]

STRUCTURE_ROWID = 10
_PAGE_BITS = 31  # FTS5_DATA_PAGE_B
_SEGID_SHIFT = 31 + 5 + 1  # page, height and doclist-index bits below the segment id
_SEGID_SPAN = 1 << 16  # FTS5_DATA_ID_B: tombstone pages of segment s are filed as segment s + 2**16
_STRUCTURE_V2 = b"\xff\x00\x00\x01"


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint (big-endian 7-bit groups, the 9th byte whole): ``(value, next offset)``; IndexError if
    the record ends inside it."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


def _segments(block: bytes) -> list[tuple[int, int, int]] | None:
    """The ``(segment id, first page, last page)`` of every segment a structure record names, None if it does
    not parse to its end."""
    try:
        at = 4  # the cookie
        v2 = block[at : at + 4] == _STRUCTURE_V2
        if v2:
            at += 4
        levels, at = _varint(block, at)
        total, at = _varint(block, at)
        _, at = _varint(block, at)  # the write counter
        segments = []
        for _ in range(levels):
            _, at = _varint(block, at)  # segments being merged
            count, at = _varint(block, at)
            for _ in range(count):
                segid, at = _varint(block, at)
                first, at = _varint(block, at)
                last, at = _varint(block, at)
                for _ in range(5 if v2 else 0):  # origins and tombstone counts
                    _, at = _varint(block, at)
                segments.append((segid, first, last))
    except IndexError:
        return None
    if at != len(block) or len(segments) != total:
        return None
    return segments


def _segment_ids(conn: sqlite3.Connection, data: str) -> set[int]:
    """The ids of the segments that have pages: one indexed lookup per segment (a skip scan over row ids)."""
    found: set[int] = set()
    at = 1 << _SEGID_SHIFT
    while True:
        row = conn.execute(f"SELECT id FROM {data} WHERE id >= ? ORDER BY id LIMIT 1", (at,)).fetchone()
        if row is None:
            return found
        segid = row[0] >> _SEGID_SHIFT
        found.add(segid % _SEGID_SPAN)
        at = (segid + 1) << _SEGID_SHIFT


def _pages(conn: sqlite3.Connection, data: str, segid: int) -> tuple[int | None, int | None]:
    """The first and last leaf page numbers the segment has on disk."""
    low = segid << _SEGID_SHIFT
    high = low + (1 << _PAGE_BITS) - 1
    first = conn.execute(f"SELECT id FROM {data} WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1", (low, high))
    last = conn.execute(f"SELECT id FROM {data} WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT 1", (low, high))
    pages = [None if row is None else row[0] - low for row in (first.fetchone(), last.fetchone())]
    return pages[0], pages[1]


def structure_is_sound(conn: sqlite3.Connection, table: str) -> bool:
    """Does the structure record of FTS5 table ``table`` describe its pages?
    ``sqlite3.DatabaseError`` propagates (the caller rebuilds then too)."""
    data = f"{table}_data"
    row = conn.execute(f"SELECT block FROM {data} WHERE id = ?", (STRUCTURE_ROWID,)).fetchone()
    if row is None or not isinstance(row[0], bytes):
        return False
    segments = _segments(row[0])
    if segments is None:
        return False
    named = {segid for segid, _, _ in segments}
    if len(named) != len(segments) or named != _segment_ids(conn, data):
        return False
    return all(_pages(conn, data, segid) == (first, last) for segid, first, last in segments)
