"""Files a user attaches to a message (``-a FILE``, ``/attach FILE``): images and PDFs as base64 content blocks."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from ..images import image_media_type
from .errors import CliError

__all__ = ["attachment_block", "with_attachments"]


def attachment_block(path: str | Path) -> dict[str, Any]:
    """The content block for one file: an image (PNG, JPEG, GIF, WebP, told by its bytes) or a PDF document.
    Anything else is refused with a clear message (paste text into the message instead)."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot attach {str(file)!r}: {exc.strerror or exc}") from exc
    encoded = base64.b64encode(data).decode("ascii")
    media_type = image_media_type(data)
    if media_type is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": encoded}}
    if data.startswith(b"%PDF-"):
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": encoded},
            "title": file.name,
        }
    raise CliError(f"cannot attach {str(file)!r}: only images (PNG, JPEG, GIF, WebP) and PDF files can be attached")


def with_attachments(text: str, blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's content: the text alone, or the attachments first and the text after them."""
    if not blocks:
        return text
    return [*blocks, {"type": "text", "text": text}] if text.strip() else list(blocks)
