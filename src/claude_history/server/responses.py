"""JSON answers that any stored text can go into.

A stored message may hold a lone surrogate (half of a UTF-16 pair: from an import, or a Python caller's own
append), which has no UTF-8 form: FastAPI's ``JSONResponse`` then fails to encode the body and the client gets
a bare 500. Such a body is written with ``\\u`` escapes instead, which decode to the very same string (what
the stores do, ``stores._json.dumps``); every other body is written as before, at the same cost."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["JSONBody"]


class JSONBody(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
