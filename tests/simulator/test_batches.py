"""Message Batches through the SDK: create, retrieve, list, cancel, delete, results as JSONL; processing
advances with the simulator clock and each result is billed at the batch price."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_history.pricing import cost_of
from claude_history.testing import Simulator

from .helpers import MODEL, error_of, post, user


def request(custom_id: str, text: str, **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {"model": MODEL, "max_tokens": 200, "messages": [user(text)], **params}}


def test_a_batch_ends_when_the_clock_passes_and_its_results_match_single_requests(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    batch = client.messages.batches.create(
        requests=[
            request("a", "repeat after me: alpha"),
            request("b", "repeat after me: beta"),
            request("bad", "x", max_tokens=0),
        ]
    )
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 3 and batch.request_counts.succeeded == 0
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600
    with pytest.raises(anthropic.AnthropicError):
        list(client.messages.batches.results(batch.id))  # no results_url yet
    sim.advance(sim.batch_seconds - 1)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    sim.advance(1)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None and ended.results_url
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled) == (0, 2, 1, 0)
    results = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
    assert results["a"].type == "succeeded" and results["a"].message.content[0].text == "alpha"
    assert results["b"].message.content[0].text == "beta"
    assert results["bad"].type == "errored"
    assert results["bad"].error.error.type == "invalid_request_error"
    # Billed at the batch price: half of what the same request costs on its own.
    message = results["a"].message
    assert message.usage.service_tier == "batch"
    single = client.messages.create(model=MODEL, max_tokens=200, messages=[user("repeat after me: alpha")])
    assert single.usage.service_tier == "standard"
    assert cost_of(message.usage, MODEL) * 2 == cost_of(single.usage, MODEL)


def test_cancel_list_and_delete(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    first = client.messages.batches.create(requests=[request("a", "hi")])
    second = client.beta.messages.batches.create(requests=[request("a", "hi"), request("b", "ho")])
    canceling = client.messages.batches.cancel(second.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = client.messages.batches.retrieve(second.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert [r.result.type for r in client.messages.batches.results(second.id)] == ["canceled", "canceled"]
    page = client.messages.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    assert [b.id for b in client.messages.batches.list(limit=1)] == [second.id, first.id]  # auto-paging
    assert [b.id for b in client.messages.batches.list(before_id=first.id).data] == [second.id]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(first.id)  # still processing
    assert client.messages.batches.delete(second.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(second.id)


def test_a_batch_slower_than_a_day_expires(sim: Simulator) -> None:
    sim.batch_seconds = 2 * 24 * 3600
    client = sim.client(max_retries=0)
    batch = client.messages.batches.create(requests=[request("a", "hi")])
    sim.advance(24 * 3600)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.request_counts.expired == 1


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "requests: Input should be a non-empty list"),
        ([{"custom_id": "has space", "params": {}}], "requests.0.custom_id: String should match pattern"),
        ([{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}], "must be unique"),
        ([{"custom_id": "a"}], "requests.0.params: Field required"),
    ],
)
def test_a_malformed_batch_is_a_400(sim: Simulator, requests: list[Any], message: str) -> None:
    status, kind, text = error_of(post(sim.base_url, {"requests": requests}, path="/v1/messages/batches"))
    assert (status, kind) == (400, "invalid_request_error")
    assert message in text


def test_batches_need_an_api_key(sim: Simulator) -> None:
    response = post(sim.base_url, {"requests": []}, path="/v1/messages/batches", headers={"x-api-key": ""})
    assert error_of(response)[:2] == (401, "authentication_error")
