"""The file store's offsets sidecar (``<name>.offsets``): where every ``STEP``-th message of a session's log
starts, and where the log's last line starts, so a ranged read (``load_messages``, a fresh turn's window) and
the state of a session (``get_session``) read what they need instead of scanning the log.

Binary and small (16 bytes per ``STEP`` messages): a header, then record ``i`` for message ``i * STEP``::

    header  magic "CHO1", crc32 of the rest, then the log it describes: inode, size, mtime (ns), message
            count, and the offset of its last line's start (in the log itself)
    record  the byte offsets, in the session's byte space (a fork's shared prefixes, then its own log, as the
            search index's spans), of the start of the line holding the message and of its entry

Derived data, never trusted blindly. Writers (under the session's lock) write it after the log line, without
fsync: append the records of the new messages, then rewrite the header. A reader trusts the header only when its
crc holds and its inode and size are the log's (and for the last line, the mtime too); a record only when it
lies in the part of the log the header covers, points at an append line's start and an entry inside it, and the
entries read from it end where the line's message count says. Anything else (missing, torn by a crash between
the log write and this one, left by a crash of a rewind, edited) means a whole read, as without the sidecar, and
the next append rebuilds it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["STEP", "Header", "Point", "header_bytes", "read_header", "read_point", "records_bytes"]

STEP = 64  # a record per this many messages: a ranged read decodes at most STEP - 1 messages it does not return
_MAGIC = b"CHO1"
_HEADER = struct.Struct("<4sI5q")
_BODY = struct.Struct("<5q")
_RECORD = struct.Struct("<2q")
HEADER_SIZE = _HEADER.size
RECORD_SIZE = _RECORD.size
APPEND_HEAD = re.compile(rb'^\{"v":(\d+),"n":(\d+),"u":(-?\d+),"op":"append","t":(-?\d+),"entries":\[')


@dataclass(frozen=True)
class Header:
    """The log a sidecar describes (``ino``, ``size``, ``mtime``), its message count and its last line's start."""

    ino: int
    size: int
    mtime: int
    count: int
    last: int

    @property
    def records(self) -> int:
        """How many records a complete sidecar of this header holds."""
        return -(-self.count // STEP)


@dataclass(frozen=True)
class Point:
    """Message ``seq`` (a multiple of ``STEP``): its line starts at ``line``, its entry at ``entry``."""

    seq: int
    line: int
    entry: int


def header_bytes(fingerprint: tuple[int, int, int], count: int, last: int) -> bytes:
    body = _BODY.pack(*fingerprint, count, last)
    return _HEADER.pack(_MAGIC, zlib.crc32(body), *fingerprint, count, last)


def records_bytes(first: int, line: int, entries: Sequence[int]) -> bytes:
    """The records of the messages ``first, first + 1, ...`` (their entries at ``entries``, all in the line
    starting at ``line``) that fall on a multiple of ``STEP``."""
    skip = -first % STEP
    return b"".join(_RECORD.pack(line, entry) for entry in entries[skip::STEP])


def read_header(fd: int) -> Header | None:
    data = os.pread(fd, HEADER_SIZE, 0)
    if len(data) < HEADER_SIZE:
        return None
    magic, crc, *values = _HEADER.unpack(data)
    if magic != _MAGIC or crc != zlib.crc32(data[8:]):
        return None
    return Header(*values)


def read_point(fd: int, index: int) -> tuple[int, int] | None:
    data = os.pread(fd, _RECORD.size, HEADER_SIZE + index * _RECORD.size)
    return _RECORD.unpack(data) if len(data) == _RECORD.size else None


def complete(fd: int, header: Header) -> bool:
    """The sidecar holds exactly its header's records: the next writer may extend it."""
    return os.fstat(fd).st_size == HEADER_SIZE + header.records * _RECORD.size


def read_records(fd: int, header: Header) -> list[tuple[int, int]]:
    data = os.pread(fd, header.records * _RECORD.size, HEADER_SIZE)
    return [_RECORD.unpack_from(data, at) for at in range(0, len(data) - _RECORD.size + 1, _RECORD.size)]


def pack_records(records: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(_RECORD.pack(line, entry) for line, entry in records)


_DECODER = json.JSONDecoder()


class Stale(Exception):
    """The bytes do not hold what the sidecar said: read the log whole instead."""


def entry_offsets(line: bytes, at: int) -> Iterator[int]:
    """The byte offsets (``at`` + position in ``line``) of the entries of one append line, decoding them one by
    one (what a rebuild reads)."""
    text = line.decode("utf-8")
    match = APPEND_HEAD.match(line)
    if match is None:
        raise Stale
    position = len(match.group(0))  # ASCII: the same in bytes and characters
    decoder = _DECODER
    ascii_only = text.isascii()
    char_at, byte_at = position, at + position
    while text[position] != "]":
        if not ascii_only:
            byte_at += len(text[char_at:position].encode("utf-8"))
            char_at = position
            yield byte_at
        else:
            yield at + position
        _, end = decoder.raw_decode(text, position)
        position = end + 1 if text[end] == "," else end
