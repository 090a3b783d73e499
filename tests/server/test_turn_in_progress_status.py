"""The service's answer to a turn refused because another one runs on the session (``TurnInProgress``): a 409
in the API's error shape, which the SDK does not retry on its own."""

from __future__ import annotations

import json

from claude_history.errors import LeaseLost, TurnInProgress
from claude_history.server.errors import error_response, status_of


def test_turn_in_progress_is_a_409_conflict_error_that_is_not_retried() -> None:
    status, message = status_of(TurnInProgress("busy", session_id="s"))
    assert status == 409 and "another request is running a turn" in message
    response = error_response(status, message)
    body = json.loads(bytes(response.body))
    assert body["type"] == "error" and body["error"]["type"] == "conflict_error"
    assert response.headers.get("x-should-retry") == "false"


def test_a_lost_lease_is_a_conflict_too() -> None:
    lost = LeaseLost("lost", session_id="s", expected_version=1, actual_version=None)
    assert status_of(lost)[0] == 409
