"""Sessions a turn cannot follow (an imported history the API would reject, one that ends with an unanswered
message): the import says so, a turn on one is a 400 that names ``POST /v1/sessions/{id}/repair`` (never the
Python ``claude_history.repair()``), and the repaired copy takes turns through both APIs."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from tests.history.strategies import messy_histories

from claude_history.history import continuation_problem

from .conftest import MODEL, Service

BROKEN: dict[str, list[dict[str, Any]]] = {
    "two user messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "an assistant first": [{"role": "assistant", "content": "x"}],
    "an unanswered last message": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "never answered"},
    ],
    "a tool_result with no tool_use": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]},
        {"role": "assistant", "content": "ok"},
    ],
    "an empty message": [{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}],
    # Half of a UTF-16 pair: the API refuses the request as invalid JSON ("no low surrogate in string").
    "a lone surrogate": [{"role": "user", "content": "a \ud83d b"}, {"role": "assistant", "content": "b"}],
}


def _headers(service: Service, tenant: str = "acme") -> dict[str, str]:
    return {"x-api-key": service.keys[tenant]}


def _import(service: Service, messages: list[dict[str, Any]], session_id: str) -> httpx2.Response:
    return httpx2.post(service.base_url + "/v1/sessions/import", params={"id": session_id},
                       content=json.dumps(messages), headers=_headers(service))  # fmt: skip


def _error(response: httpx2.Response) -> str:
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_import_is_said_refused_with_http_advice_and_repaired(service: Service, case: str) -> None:
    made = _import(service, BROKEN[case], "imp")
    assert made.status_code == 201  # stored as it is: an archive is never rewritten behind the client's back
    assert made.json()["continuable"] is False
    assert "POST /v1/sessions/imp/repair" in made.json()["problem"]

    turn = httpx2.post(service.base_url + "/v1/sessions/imp/messages", json={"content": "hello"},
                       headers=_headers(service), timeout=30)  # fmt: skip
    assert turn.status_code == 400
    message = _error(turn)
    assert message.startswith("session 'imp' cannot be continued: ")
    assert "POST /v1/sessions/imp/repair" in message and "claude_history" not in message
    streamed = httpx2.post(service.base_url + "/v1/sessions/imp/messages", json={"content": "hello", "stream": True},
                           headers=_headers(service), timeout=30)  # fmt: skip
    assert streamed.status_code == 400 and _error(streamed) == message  # before any event: a plain 400
    report = httpx2.get(service.base_url + "/v1/sessions/imp/context", headers=_headers(service))
    assert report.status_code == 400 and _error(report) == message  # what the next request would be: none
    with pytest.raises(anthropic.BadRequestError) as refused:
        service.client(session="imp").messages.create(model=MODEL, max_tokens=50,
                                                      messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert "cannot be continued" in str(refused.value) and "claude_history" not in str(refused.value)
    assert service.client().get("/v1/sessions/imp", cast_to=object)["version"] == 1  # type: ignore[index]

    labels = {"title": "Imported", "tags": ["crm"], "metadata": {"source": "crm"}}
    assert httpx2.patch(service.base_url + "/v1/sessions/imp", json=labels, headers=_headers(service)).is_success
    repaired = httpx2.post(service.base_url + "/v1/sessions/imp/repair", json={"id": "fixed"},
                           headers=_headers(service))  # fmt: skip
    assert repaired.status_code == 201, repaired.text
    copy = repaired.json()
    assert copy["id"] == "fixed" and copy["repaired"] is True and copy["repaired_from"] == "imp"
    assert {k: copy[k] for k in labels} == labels  # the copy keeps the session's labels
    if case == "an unanswered last message":
        assert copy["left_out"] == ["never answered"]  # said, so it can be sent again
    # Both APIs now take turns on the copy; the original is unchanged.
    reply = httpx2.post(service.base_url + "/v1/sessions/fixed/messages", json={"content": "hello"},
                        headers=_headers(service), timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text
    again = service.client(session="fixed").messages.create(model=MODEL, max_tokens=50,
                                                            messages=[{"role": "user", "content": "hi"}])  # fmt: skip
    assert again.role == "assistant"
    stored = service.client().get("/v1/sessions/imp/messages", cast_to=object)["data"]  # type: ignore[index]
    assert [{"role": m["role"], "content": m["content"]} for m in stored] == BROKEN[case]


def test_a_session_that_needs_no_repair_is_given_back_as_it_is(service: Service) -> None:
    made = _import(service, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "ok")
    assert made.json()["continuable"] is True and made.json()["problem"] is None
    answer = httpx2.post(service.base_url + "/v1/sessions/ok/repair", headers=_headers(service))
    assert answer.status_code == 200
    assert answer.json()["id"] == "ok" and answer.json()["repaired"] is False
    ids = [s["id"] for s in service.client().get("/v1/sessions", cast_to=object)["data"]]  # type: ignore[index]
    assert ids == ["ok"]  # no copy made


def test_a_repair_into_a_taken_id_is_a_409_and_another_tenants_session_a_404(service: Service) -> None:
    _import(service, BROKEN["two user messages"], "broken")
    _import(service, BROKEN["an empty message"], "taken")
    taken = httpx2.post(service.base_url + "/v1/sessions/broken/repair", json={"id": "taken"},
                        headers=_headers(service))  # fmt: skip
    assert taken.status_code == 409 and taken.json()["error"]["type"] == "conflict_error"
    theirs = httpx2.post(service.base_url + "/v1/sessions/broken/repair", headers=_headers(service, "globex"))
    assert theirs.status_code == 404 and theirs.json()["error"]["type"] == "not_found_error"
    # The refused repair wrote nothing.
    listed = service.client().get("/v1/sessions", cast_to=object)["data"]  # type: ignore[index]
    assert sorted(s["id"] for s in listed) == ["broken", "taken"]


def test_a_bad_new_message_on_a_healthy_session_keeps_its_own_error(service: Service) -> None:
    _import(service, [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "healthy")
    answer = httpx2.post(service.base_url + "/v1/sessions/healthy/messages",
                         json={"content": [{"type": "text", "text": "   "}]}, headers=_headers(service))  # fmt: skip
    assert answer.status_code == 400
    message = _error(answer)
    assert "cannot be continued" not in message and "empty" in message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(history=messy_histories())
def test_any_imported_history_can_be_repaired_into_one_that_takes_a_turn(
    service: Service, history: list[dict[str, Any]]
) -> None:
    sid = f"m{uuid.uuid4().hex}"  # the service lives across examples
    made = _import(service, history, sid)
    if made.status_code != 201:  # a shape the store refuses (not a message list): said, nothing stored
        assert made.status_code == 400
        return
    assert made.json()["continuable"] is (continuation_problem(history) is None)
    repaired = httpx2.post(service.base_url + f"/v1/sessions/{sid}/repair", headers=_headers(service))
    assert repaired.status_code in (200, 201), repaired.text
    target = repaired.json()["id"]
    reply = httpx2.post(service.base_url + f"/v1/sessions/{target}/messages", json={"content": "go on"},
                        headers=_headers(service), timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text


def test_a_session_holding_a_lone_surrogate_reads_and_exports_escaped(service: Service) -> None:
    """No UTF-8 form: written with \\u escapes (was a bare 500 for the messages, a cut export)."""
    _import(service, BROKEN["a lone surrogate"], "sur")
    listed = httpx2.get(service.base_url + "/v1/sessions/sur/messages", headers=_headers(service))
    assert listed.status_code == 200 and listed.json()["data"][0]["content"] == "a \ud83d b"
    exported = httpx2.get(service.base_url + "/v1/sessions/sur/export", headers=_headers(service))
    assert exported.status_code == 200 and len(exported.text.splitlines()) == 3  # header and both messages
    again = httpx2.post(service.base_url + "/v1/sessions/import", params={"id": "sur2"}, content=exported.content,
                        headers=_headers(service))  # fmt: skip
    assert again.status_code == 201
    copied = httpx2.get(service.base_url + "/v1/sessions/sur2/messages", headers=_headers(service)).json()["data"]
    assert [{"role": m["role"], "content": m["content"]} for m in copied] == BROKEN["a lone surrogate"]
    markdown = httpx2.get(service.base_url + "/v1/sessions/sur/export", params={"format": "markdown"},
                          headers=_headers(service))  # fmt: skip
    assert markdown.status_code == 200 and "a ? b" in markdown.text
