"""Rollback and truncation detection for the encrypted store's message log (format 2 rows).

Each row carries, under its authentication tag, the version its append produced (``w``) and the ``w`` of the
row before it (``p``; 0 for the first row). Versions only grow within an incarnation and each is produced by
one append, so:

* a row put back from before a rewind (or from an earlier copy of the session) does not have the ``w`` the
  next row names as its ``p``: the chain breaks there;
* the last row's ``w`` is the session's version, unless the wrapper's own rewind explains the difference: it
  leaves a note sealed with the key (the version and message count the rewind produced, and the ``w`` of the
  row it kept last) in two places: the session's encryption record, where any later metadata write built from
  an older read, or a racing rewind, may replace it (metadata is last writer wins), and the log of a record of
  its own (``note_id``), which rewinds only append to (a compare-and-swap: no note there is ever lost), read
  when the first does not explain the end. Dropping the last turn beneath the wrapper, or
  putting back an older copy of it, bumps the version without such a note and is detected.

Rows of format 1 (written before chaining) carry no link: the chain restarts after them, and a log that ends
in one is not checked at its end. Restoring a whole older copy of a session (every row, its version and its
record) is a consistent older session and is not detected (docs/security.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...errors import DecryptionError

__all__ = ["Link", "LogEndError", "check_links", "explains", "last_written"]

Link = tuple[int, int]  # (w, p) of a format 2 row


class LogEndError(DecryptionError):
    """The log does not end where the wrapper left it, as far as the rewind note at hand tells: the caller may
    look for the note in its second place (the note's own record, which only rewinds write) before giving up."""


def explains(note: Mapping[str, object] | None, version: int, count: int, last: int) -> bool:
    """Does the (authentic) rewind ``note`` say the wrapper left the log at ``version`` with ``count`` rows, the
    last written at ``last``?"""
    return note is not None and (note.get("version"), note.get("count"), note.get("last")) == (version, count, last)


def last_written(links: Sequence[Link | None]) -> int | None:
    """The ``w`` of the last of ``links`` (0 for none), None for a row of format 1: what a cut that keeps
    these rows last leaves in its note."""
    if not links:
        return 0
    last = links[-1]
    return None if last is None else last[0]


def check_links(
    session_id: str,
    links: Sequence[Link | None],
    first_seq: int,
    *,
    end: tuple[int, Mapping[str, object] | None, bool] | None,
) -> None:
    """``DecryptionError`` if the rows (``links[i]`` is row ``first_seq + i``'s link, None for a row of format
    1) do not chain, or, with ``end = (version, note, chained)`` for a whole log, if it does not end where
    the wrapper left it (``chained``: the session was written with chaining, which matters for an empty log)."""
    prev: int | None = 0 if first_seq == 0 else None
    for offset, link in enumerate(links):
        if link is None:
            prev = None
            continue
        written, previous = link
        if prev is not None and previous != prev:
            raise DecryptionError(
                f"message {first_seq + offset} of session {session_id!r} is not the one the encrypted store "
                "wrote there: an older copy of it was put back, or the messages before it were changed "
                "beneath the wrapper (rollback?). Nothing was changed."
            )
        prev = written
    if end is None:
        return
    version, note, chained = end
    if links:
        if links[-1] is None:
            return
        last = links[-1][0]
    elif chained:
        last = 0
    else:
        return
    if last == version or explains(note, version, first_seq + len(links), last):
        return
    raise LogEndError(
        f"session {session_id!r} does not end where the encrypted store left it: its last message was written "
        f"at version {last} but the session is at version {version} with no rewind of the store's to explain "
        "it, so turns were dropped or replaced beneath the wrapper (rollback?). Nothing was changed."
    )
