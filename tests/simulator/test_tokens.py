"""The documented token rule, image sizes from the bytes, and image tokens with the API's caps."""

from __future__ import annotations

import base64
import io
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_history.images import (
    HIGH_RES_LIMITS,
    STANDARD_LIMITS,
    image_limits,
    image_media_type,
    image_size,
    image_tokens,
)
from claude_history.testing import Simulator

from .helpers import MODEL, image_block, image_bytes, user


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("size", [(1, 1), (640, 480), (123, 4567)])
def test_image_size_reads_the_header(fmt: str, size: tuple[int, int]) -> None:
    data = image_bytes(*size, fmt=fmt)
    assert image_size(data) == size
    assert image_media_type(data) == f"image/{fmt.lower()}"


def test_image_size_of_other_encodings() -> None:
    from PIL import Image

    def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    rgb = Image.new("RGB", (300, 200))
    assert image_size(encode(rgb, "JPEG", progressive=True)) == (300, 200)
    assert image_size(encode(rgb, "WEBP", lossless=True)) == (300, 200)  # VP8L
    assert image_size(encode(Image.new("RGBA", (300, 200)), "WEBP")) == (300, 200)  # VP8X with alpha
    assert image_size(encode(Image.new("P", (300, 200)), "PNG")) == (300, 200)


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00", b"GIF89a", b"RIFF0000WEBPVP8 "]
)
def test_unreadable_images_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        image_size(data)


def test_image_tokens_formula_and_caps() -> None:
    assert image_tokens(280, 280) == 100
    assert image_tokens(1000, 1000) == 36 * 36 == 1296
    assert image_tokens(29, 1) == 2
    assert image_tokens(1000, 1000, long_edge_cap=2576) == 1296
    assert image_tokens(8000, 6000) <= STANDARD_LIMITS[1]
    assert image_tokens(8000, 6000, long_edge_cap=2576) <= HIGH_RES_LIMITS[1]
    assert image_tokens(8000, 6000, long_edge_cap=2576) > image_tokens(8000, 6000)
    # A long thin image is scaled to the long-edge cap first.
    assert image_tokens(10_000, 28) == math.ceil(1568 / 28) * 1
    with pytest.raises(ValueError):
        image_tokens(0, 10)


@given(st.integers(1, 20_000), st.integers(1, 20_000), st.sampled_from([STANDARD_LIMITS, HIGH_RES_LIMITS]))
def test_image_tokens_stay_within_the_cap(width: int, height: int, limits: tuple[int, int]) -> None:
    tokens = image_tokens(width, height, long_edge_cap=limits[0], token_cap=limits[1])
    assert 1 <= tokens <= limits[1]
    if max(width, height) <= limits[0] and math.ceil(width / 28) * math.ceil(height / 28) <= limits[1]:
        assert tokens == math.ceil(width / 28) * math.ceil(height / 28)


def test_image_limits_by_model() -> None:
    assert image_limits("claude-sonnet-4-6") == STANDARD_LIMITS
    assert image_limits("claude-opus-4-7") == HIGH_RES_LIMITS
    assert image_limits("claude-opus-5-5") == HIGH_RES_LIMITS
    assert image_limits("unknown-model") == STANDARD_LIMITS


def count(sim: Simulator, model: str = MODEL, **request: object) -> int:
    return sim.client(max_retries=0).messages.count_tokens(model=model, **request).input_tokens  # type: ignore[arg-type]


def test_the_documented_text_rule(sim: Simulator) -> None:
    one = [user("a" * 400)]
    assert count(sim, messages=one) == 100 + 3 + 4  # ceil(bytes / 4) + block + message overhead
    assert count(sim, "claude-opus-5-5", messages=one) == 130 + 3 + 4  # tokenizer factor 1.3
    assert count(sim, messages=[user("é" * 3)]) == 2 + 3 + 4  # UTF-8 bytes, rounded up
    two_blocks = [user([{"type": "text", "text": "a" * 40}, {"type": "text", "text": "b" * 40}])]
    assert count(sim, messages=two_blocks) == 10 + 10 + 3 + 3 + 4
    assert count(sim, messages=one, system="s" * 80) == 107 + 20 + 3


def test_tools_count_their_json(sim: Simulator) -> None:
    tool = {"name": "t", "description": "d", "input_schema": {"type": "object"}}
    canonical = '{"description":"d","input_schema":{"type":"object"},"name":"t"}'
    base = count(sim, messages=[user("hi")])
    assert count(sim, messages=[user("hi")], tools=[tool]) == base + 3 + math.ceil(len(canonical) / 4)


def test_images_count_their_real_size(sim: Simulator) -> None:
    base = count(sim, messages=[user("hi")])
    with_image = count(sim, messages=[user([image_block(560, 280), {"type": "text", "text": "hi"}])])
    assert with_image == base + 3 + 20 * 10
    high_res = count(
        sim, "claude-opus-4-7", messages=[user([image_block(2576, 28), {"type": "text", "text": "hi"}])]
    )
    assert high_res == count(sim, "claude-opus-4-7", messages=[user("hi")]) + 3 + 92
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert count(sim, messages=[user([url, {"type": "text", "text": "hi"}])]) == base + 3 + 1568


def test_pdf_pages(sim: Simulator) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    pages = [Image.new("RGB", (100, 100)) for _ in range(3)]
    pages[0].save(buffer, format="PDF", save_all=True, append_images=pages[1:])
    data = base64.b64encode(buffer.getvalue()).decode()
    doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
    base = count(sim, messages=[user("hi")])
    assert count(sim, messages=[user([doc, {"type": "text", "text": "hi"}])]) == base + 3 + 3 * 3068


def test_usage_matches_count_tokens_for_mixed_content(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes " * 50}}
    messages = [user([image_block(300, 300), doc, {"type": "text", "text": "Describe both."}])]
    tools = [{"name": "t", "description": "d", "input_schema": {"type": "object"}}]
    n = client.messages.count_tokens(model=MODEL, messages=messages, tools=tools, system="sys").input_tokens
    usage = client.messages.create(
        model=MODEL, max_tokens=300, messages=messages, tools=tools, system="sys"
    ).usage
    assert usage.input_tokens == n
