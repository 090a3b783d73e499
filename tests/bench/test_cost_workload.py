"""The cost benchmark's workload is reproducible and valid, and its harness runs end to end (a tiny run)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from claude_history.history import validate
from claude_history.images import image_size

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import cost  # noqa: E402
import workload  # noqa: E402


def _history(conv: workload.Conversation) -> list[dict]:
    """The conversation as the naive baseline keeps it (every reply and tool result in order)."""
    messages: list[dict] = []
    for turn in conv.turns:
        messages.append({"role": "user", "content": turn.user_content()})
        for k in range(len(turn.rounds) + 1):
            reply = turn.reply(k)
            messages.append({"role": "assistant", "content": reply})
            uses = [b for b in reply if b["type"] == "tool_use"]
            if uses:
                results = [
                    {"type": "tool_result", "tool_use_id": b["id"], "content": turn.call(b["id"]).output} for b in uses
                ]
                messages.append({"role": "user", "content": results})
    return messages


def test_same_seed_same_workload_other_seed_other_workload() -> None:
    first = workload.generate(seed=11, conversations=2, turns=40)
    again = workload.generate(seed=11, conversations=2, turns=40)
    other = workload.generate(seed=12, conversations=2, turns=40)
    assert first == again
    assert first != other
    assert first[0].turns != first[1].turns  # conversations differ from each other too


def test_workload_shape() -> None:
    convs = workload.generate(seed=5, conversations=2, turns=120)
    for conv in convs:
        assert len(conv.turns) == 120
        assert conv.turns[0].gap == 0
        assert all(0 < t.gap <= workload.MAX_GAP for t in conv.turns[1:])
        loops = [t for t in conv.turns if t.rounds]
        assert loops, "some turns run tools"
        assert all(5 <= t.loop_blocks <= 30 for t in loops)
        ids = [c.id for t in loops for r in t.rounds for c in r.calls]
        assert len(ids) == len(set(ids))
        images = [t for t in conv.turns if t.has_image]
        assert len(images) == workload.IMAGES_PER_CONVERSATION
        for t in images:
            source = t.user[1]["source"]  # type: ignore[index]
            width, height = image_size(base64.b64decode(source["data"]))
            assert 300 <= width <= 1_100 and 200 <= height <= 900
        # The whole script is a history the API accepts.
        validate(_history(conv), for_sending=False)


def test_png_is_deterministic_and_has_its_size() -> None:
    data = workload.png(123, 45, seed=7)
    assert data == workload.png(123, 45, seed=7)
    assert image_size(data) == (123, 45)


@pytest.mark.timeout(120)
def test_tiny_run_end_to_end(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Storage\n\nstorage figures stay.\n")
    assert (
        cost.main(
            [
                "--quick",
                "--jobs",
                "1",
                "--models",
                "claude-sonnet-4-6",
                "--only",
                "naive",
                "naive+bp",
                "naive+auto",
                "guides",
                "guides20",
                "guides20+bp",
                "KeepAll",
                "CacheAwareWindow",
                "--results",
                str(results),
                "--json",
                str(tmp_path / "runs.json"),
            ]
        )
        == 0
    )
    text = results.read_text()
    assert "## Storage\n\nstorage figures stay." in text
    assert "## Cost" in text and "### claude-sonnet-4-6" in text and "### Targets" in text

    import json

    saved = json.loads((tmp_path / "runs.json").read_text())
    runs = {r["strategy"]: r for r in saved["runs"]}
    naive, keep = runs["naive"], runs["KeepAll"]
    assert naive["invalid"] == 0 and keep["invalid"] == 0
    # Same conversation, same requests' size; caching makes KeepAll cheaper and nothing else.
    assert naive["prompt_tokens"] == keep["prompt_tokens"]
    assert naive["read_tokens"] == 0 and keep["read_tokens"] > 0
    assert keep["cost"] < naive["cost"]
    # The strict bound is a bound: nobody beats it, not even a run that reads nearly everything from the cache.
    for run in runs.values():
        assert run["input_cost"] >= run["bound_input_cost"] - 1e-9
        assert run["cost"] >= run["bound_input_cost"] + run["output_cost"] - 1e-9
    # The careful baselines send the naive requests, with a breakpoint: same context, read from the cache, cheaper.
    for key in ("naive+bp", "naive+auto"):
        careful = runs[key]
        assert careful["invalid"] == 0 and careful["prompt_tokens"] == naive["prompt_tokens"]
        assert careful["read_tokens"] > 0 and careful["cost"] < naive["cost"]
    assert runs["guides20+bp"]["invalid"] == 0
    assert runs["guides20+bp"]["prompt_tokens"] == runs["guides20"]["prompt_tokens"]
    # Each run is one seed's conversation, and the report compares ours with every baseline it ran.
    assert {run["seed"] for run in runs.values()} == {1}
    assert "full resend, breakpoint on the last message / KeepAll(): " in text
    # The guides' window cut at a user message is always accepted; neither baseline uses the cache.
    assert runs["guides20"]["invalid"] == 0 and runs["guides20"]["read_tokens"] == 0
    assert runs["guides"]["read_tokens"] == 0
    for key in ("CacheAwareWindow@3000", "CacheAwareWindow@8000"):
        assert runs[key]["invalid"] == 0
        assert runs[key]["prompt_tokens"] < keep["prompt_tokens"]

    # The fixed-TTL reference rows ran with their TTL, and are not held to the targets.
    assert {"CacheAwareWindow@3000/5m", "CacheAwareWindow@3000/1h"} <= set(runs)
    assert "TTL fixed 5m) within" not in text

    # Rendering again from the saved figures gives the same tables.
    again = tmp_path / "again.md"
    cost.main(["--render", str(tmp_path / "runs.json"), "--results", str(again)])
    assert again.read_text().split("## Cost")[1] == text.split("## Cost")[1]

    # A second run replaces the section instead of adding one.
    cost.main(["--quick", "--jobs", "1", "--models", "claude-sonnet-4-6", "--only", "naive", "--results", str(results)])
    assert results.read_text().count("## Cost") == 1
