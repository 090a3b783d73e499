"""The stores' JSON codec: ``dumps`` writes what is stored (compact, key order and non-ASCII text kept), and
``decode_json`` reads it back faster than ``json.loads`` with exactly its results and errors (jiter where it
agrees, json's C scanner otherwise)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["decode_json", "decode_stdlib", "dumps", "fast_decoder"]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()


def dumps(value: Any) -> str:
    """Compact JSON that keeps key order and non-ASCII text as is: what is stored is what the API returned.
    (``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, with one shared encoder.)

    A lone surrogate (valid in JSON as ``"\\ud800"``, so a reply can carry one) cannot be written as UTF-8:
    such a value is written with ``\\u`` escapes instead, which decode to the very same string."""
    text = _ENCODER.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ASCII_ENCODER.encode(value)
    return text


_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner

_jiter: Any
try:  # jiter (Rust; the anthropic SDK's own JSON parser, so always there): two to three times json's speed
    import jiter as _jiter
except ImportError:  # pragma: no cover - a dependency of ours and of anthropic's
    _jiter = None


def _jiter_decoder(module: Any) -> Callable[..., Any] | None:
    """``module.from_json`` if it is jiter 0.5 or newer (0.4.0 decoded ``"\\u0080"`` to the wrong text), else None."""
    if module is None:
        return None
    match = re.match(r"(\d+)\.(\d+)", str(getattr(module, "__version__", "")))
    if match is None or (int(match[1]), int(match[2])) < (0, 5):
        return None
    decoder: Callable[..., Any] = module.from_json
    return decoder


_jiter_from_json = _jiter_decoder(_jiter)

# jiter refuses integer literals longer than this; json.loads refuses those longer than
# sys.get_int_max_str_digits() (4,300 by default, 0 = no limit), so jiter is used only when the limit is not lower.
_JITER_INT_DIGITS = 4300


def fast_decoder() -> Callable[..., Any] | None:
    """jiter's ``from_json`` where it decodes exactly as ``json.loads``, else None.

    Where jiter accepts a text it gives the very values ``json.loads`` gives (same types, same floats to the
    bit, same key order, last duplicate key wins), with NaN and Infinity refused (``allow_inf_nan=False``); it
    refuses a few texts ``json.loads`` accepts (lone surrogate escapes, NaN, more than 200 levels of nesting,
    integers of more than 4,300 digits): callers then decode with ``json``, which gives its own value or its
    own error. So the results and the errors stay ``json.loads``'s; tests/stores/test_fast_decode.py checks it.
    ``cache_mode="keys"``: dict keys come from jiter's bounded process-wide cache; values are not cached, so
    no message text (even a short one) outlives its session in that cache after a delete, for about 4% of a
    long load."""
    if _jiter_from_json is None:
        return None
    limit = getattr(sys, "get_int_max_str_digits", None)  # Python 3.10.7+
    if limit is not None and 0 < limit() < _JITER_INT_DIGITS:
        return None
    return _jiter_from_json


def decode_stdlib(text: str | bytes) -> Any:
    if not isinstance(text, str):
        text = text.decode("utf-8")
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # for json.loads's own error
    if end != len(text):
        return json.loads(text)
    return value


def decode_json(text: str | bytes | None) -> Any:
    """``json.loads`` for what the stores wrote, faster: through jiter (see ``fast_decoder``) when it takes the
    text, else straight to json's C scanner for compact JSON with nothing around it (``JSONDecoder.decode``
    adds two regex matches per call), else the full decoder, so the result and the errors are exactly
    ``json.loads``'s. Bytes are UTF-8."""
    if text is None:
        return None
    fast = fast_decoder()
    if fast is not None and (type(text) is bytes or type(text) is str):
        try:
            data = text.encode("utf-8") if isinstance(text, str) else text
            return fast(data, allow_inf_nan=False, cache_mode="keys")
        except ValueError:  # refused (or a lone surrogate that UTF-8 cannot encode): json decides
            pass
    return decode_stdlib(text)
