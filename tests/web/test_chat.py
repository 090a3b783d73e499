"""Signing in and chatting in a real browser: the key stays in the tab, replies stream, a reload finds the
conversation again, attachments, undo, retry, edit and fork."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import pytest
from PIL import Image

from .conftest import Site, sign_in

# One worker runs this module (pytest-xdist, --dist loadgroup): its browser and service start once.
pytestmark = pytest.mark.xdist_group("web-chat")


def _new_session(page: Any) -> str:
    page.get_by_role("button", name="New session").click()
    page.locator("#session").wait_for(state="visible")
    page.wait_for_function("() => location.hash.startsWith('#session=')")
    return str(page.evaluate("decodeURIComponent(location.hash.split('=')[1])"))


def _send(page: Any, text: str) -> None:
    replies = page.locator(".message.assistant:not(.streaming)").count()
    page.get_by_label("Message (Enter sends, Shift+Enter adds a line)").fill(text)
    page.keyboard.press("Enter")
    page.locator(".message.assistant:not(.streaming)").nth(replies).wait_for()
    page.locator(".message.assistant .usage").nth(replies).wait_for()


def _stored(site: Site, session_id: str, tenant: str = "acme") -> list[dict[str, Any]]:
    with site.api(tenant) as api:
        response = api.get(f"/v1/sessions/{session_id}/messages")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data


def test_sign_in_keeps_the_key_in_this_tab_only(page: Any, site: Site, browser: Any) -> None:
    page.goto(site.base_url + "/")
    page.get_by_label("API key").fill("chk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").get_by_text("This key is not valid").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, site)
    assert page.evaluate("sessionStorage.getItem('claude-history-key')") == site.keys["acme"]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert site.keys["acme"] not in page.content()  # not in the DOM (the field was cleared)
    # The same tab after a reload stays signed in; a new browser session does not.
    page.reload()
    page.locator("#app").wait_for(state="visible")
    other = browser.new_context()
    try:
        fresh = other.new_page()
        fresh.goto(site.base_url + "/")
        fresh.get_by_label("API key").wait_for()
        assert fresh.locator("#app").is_hidden()
    finally:
        other.close()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_streamed_reply_shows_as_it_comes_and_is_found_after_a_reload(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    words = " ".join(f"word{i}" for i in range(40))
    site.sim.reply_with(f"Here is **bold** and a list:\n\n- {words}")
    site.sim.slow_next_stream(0.08)
    page.get_by_label("Message (Enter sends, Shift+Enter adds a line)").fill("Tell me a long story")
    page.keyboard.press("Enter")
    streaming = page.locator(".message.assistant.streaming")
    streaming.get_by_text("word3", exact=False).wait_for()
    assert page.get_by_role("button", name="Stop").is_visible()
    partial = streaming.inner_text()
    assert "word39" not in partial  # seen before the end of the reply
    page.locator(".message.assistant:not(.streaming) .usage").wait_for()
    assert page.get_by_role("button", name="Stop").is_hidden()
    assert page.locator(".message.assistant strong").first.inner_text() == "bold"
    assert page.locator(".message.assistant li").inner_text().endswith("word39")
    stored = _stored(site, session_id)
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[0]["content"] == "Tell me a long story"
    # The first message names the session; a reload opens it again from the address.
    page.reload()
    page.locator(".message.assistant li").wait_for()
    assert page.locator("#session-title").inner_text() == "Tell me a long story"
    assert page.locator(".session-item.active .title").inner_text() == "Tell me a long story"
    assert page.locator(".message").count() == 2
    assert not page.errors or all("Failed to load resource" in e for e in page.errors), page.errors


def test_stop_keeps_the_reply_the_service_finishes(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    site.sim.reply_with(" ".join(f"w{i}" for i in range(60)))
    site.sim.slow_next_stream(0.1)  # 6 s in all: time to see it stream and press Stop on a busy machine
    page.get_by_label("Message (Enter sends, Shift+Enter adds a line)").fill("Go on")
    page.keyboard.press("Enter")
    page.locator(".message.assistant.streaming").get_by_text("w2", exact=False).wait_for()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped. The service still finishes this reply").wait_for()
    # The service finished and stored the turn; the page picks it up without a banner.
    page.locator(".message.assistant .usage").wait_for(timeout=30_000)
    assert page.locator("#banner").is_hidden()
    assert page.locator(".message.assistant").inner_text().count("w59") == 1
    assert [m["role"] for m in _stored(site, session_id)] == ["user", "assistant"]


def test_a_message_sent_while_the_session_still_loads_keeps_its_streaming_reply(page: Any, site: Site) -> None:
    # The session's load finishing after the send started used to redraw the message list from what it had
    # loaded (nothing), wiping the user's message and the reply streaming in below it.
    sign_in(page, site)
    held: list[Any] = []
    page.route("**/v1/sessions/*/costs*", lambda route: held.append(route))  # the load's last request, held
    page.get_by_role("button", name="New session").click()
    page.locator("#session").wait_for(state="visible")
    page.wait_for_function("() => location.hash.startsWith('#session=')")
    while not held:
        page.wait_for_timeout(20)
    site.sim.reply_with(" ".join(f"x{i}" for i in range(40)))
    site.sim.slow_next_stream(0.05)
    page.get_by_label("Message (Enter sends, Shift+Enter adds a line)").fill("Sent early")
    page.keyboard.press("Enter")
    streaming = page.locator(".message.assistant.streaming")
    streaming.get_by_text("x2", exact=False).wait_for()
    held[0].continue_()
    page.unroute("**/v1/sessions/*/costs*")
    page.locator("#cost-total").wait_for(state="attached")  # the load has ended (the message list is drawn right after)
    page.evaluate("() => new Promise((done) => setTimeout(done, 50))")
    assert streaming.count() == 1
    assert page.locator(".message.user").inner_text().endswith("Sent early")
    page.locator(".message.assistant:not(.streaming) .usage").wait_for()
    assert page.locator(".message.assistant").inner_text().count("x39") == 1
    assert page.locator(".message.user").count() == 1


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_images_attach_by_file_paste_or_drop(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    png = _png()
    page.locator("#file").set_input_files({"name": "red.png", "mimeType": "image/png", "buffer": png})
    page.get_by_role("button", name="Remove red.png").wait_for()
    encoded = base64.b64encode(png).decode()
    script = """([data, kind]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], kind + ".png", { type: "image/png" }));
        if (kind === "pasted") {
            const event = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
            document.getElementById("input").dispatchEvent(event);
        } else {
            const event = new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true });
            document.getElementById("messages").dispatchEvent(event);
        }
    }"""
    page.evaluate(script, [encoded, "pasted"])
    page.get_by_role("button", name="Remove pasted.png").wait_for()
    page.evaluate(script, [encoded, "dropped"])
    page.get_by_role("button", name="Remove dropped.png").wait_for()
    page.get_by_role("button", name="Remove pasted.png").click()
    page.locator("#file").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hi"})
    page.get_by_text("notes.txt cannot be attached").wait_for()
    _send(page, "What colour is this?")
    stored = _stored(site, session_id)[0]["content"]
    assert [b["type"] for b in stored] == ["image", "image", "text"]
    assert stored[0]["source"] == {"type": "base64", "media_type": "image/png", "data": encoded}
    assert stored[2]["text"] == "What colour is this?"
    assert page.locator(".message.user img.attached-image").count() == 2
    assert page.locator("#attachments .chip").count() == 0


def test_a_pdf_attaches_as_a_document(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    page.locator("#file").set_input_files({"name": "brief.pdf", "mimeType": "application/pdf", "buffer": pdf})
    _send(page, "Summarise it")
    block = _stored(site, session_id)[0]["content"][0]
    assert block["type"] == "document" and block["title"] == "brief.pdf"
    assert block["source"]["media_type"] == "application/pdf"
    assert "brief.pdf" in page.locator(".message.user .chip.document").inner_text()


def test_undo_and_retry(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    site.sim.reply_with("First answer")
    _send(page, "One")
    site.sim.reply_with("Second answer")
    _send(page, "Two")
    page.get_by_role("button", name="Undo").click()
    page.get_by_text("Undone: 2 messages removed.").wait_for()
    assert page.locator(".message").count() == 2
    assert [m["content"] for m in _stored(site, session_id)] == ["One", [{"type": "text", "text": "First answer"}]]
    site.sim.reply_with("Answer, retried")
    page.get_by_role("button", name="Retry").click()
    page.locator(".message.assistant").get_by_text("Answer, retried").wait_for()
    page.locator(".message.assistant .usage").first.wait_for()
    stored = _stored(site, session_id)
    assert [m["content"] if m["role"] == "user" else m["content"][0]["text"] for m in stored] == [
        "One", "Answer, retried"]  # fmt: skip


def test_editing_a_past_message_forks_there_and_fork_here_copies_the_start(page: Any, site: Site) -> None:
    sign_in(page, site)
    original = _new_session(page)
    for text in ("Alpha", "Beta"):
        _send(page, text)
    page.get_by_role("button", name="Edit message 3").click()
    edit = page.get_by_label("New text of message 3")
    assert edit.input_value() == "Beta"
    edit.fill("Gamma")
    site.sim.reply_with("Gamma answer")
    page.get_by_role("button", name="Fork and send").click()
    page.locator(".message.assistant").get_by_text("Gamma answer").wait_for()
    page.wait_for_function("(old) => !location.hash.includes(old)", arg=original)
    forked = str(page.evaluate("decodeURIComponent(location.hash.split('=')[1])"))
    page.locator(".message.assistant .usage").nth(1).wait_for()
    assert [m["content"] for m in _stored(site, forked) if m["role"] == "user"] == ["Alpha", "Gamma"]
    assert [m["content"] for m in _stored(site, original) if m["role"] == "user"] == ["Alpha", "Beta"]
    assert page.locator("#session-title").inner_text().endswith("(fork)")
    page.get_by_role("button", name="Fork after message 2").click()
    page.wait_for_function("(old) => !location.hash.includes(old)", arg=forked)
    page.get_by_text("Forked").wait_for()
    third = str(page.evaluate("decodeURIComponent(location.hash.split('=')[1])"))
    assert [m["content"] for m in _stored(site, third) if m["role"] == "user"] == ["Alpha"]
    assert page.locator(".message").count() == 2


def test_a_change_made_elsewhere_shows_a_banner(page: Any, site: Site) -> None:
    sign_in(page, site)
    session_id = _new_session(page)
    _send(page, "Hello")
    with site.api() as api:
        api.post(f"/v1/sessions/{session_id}/messages", json={"content": "From another client"}).raise_for_status()
    banner = page.get_by_role("status").filter(has_text="changed in another tab")
    banner.wait_for()
    assert page.locator(".message").count() == 2
    page.get_by_role("button", name="Reload").click()
    page.get_by_text("From another client", exact=True).wait_for()
    assert banner.is_hidden()
    started = time.monotonic()
    with site.api() as api:
        api.delete(f"/v1/sessions/{session_id}").raise_for_status()
    page.get_by_text("deleted in another tab").wait_for()
    assert time.monotonic() - started < 8


def test_a_session_no_turn_can_follow_is_continued_in_a_repaired_copy(page: Any, site: Site) -> None:
    """An imported history ending with a message that got no reply: sending says so and offers the repaired
    copy, which opens with the unanswered message back in the composer; the original is kept."""
    broken = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
              {"role": "user", "content": "Never answered"}]  # fmt: skip
    with site.api() as api:
        made = api.post("/v1/sessions/import", params={"id": "imported-broken"}, json=broken)
        assert made.status_code == 201 and made.json()["continuable"] is False
    sign_in(page, site)
    page.goto(site.base_url + "/#session=imported-broken")
    page.locator(".message").nth(2).wait_for()
    page.get_by_label("Message (Enter sends, Shift+Enter adds a line)").fill("And now?")
    page.keyboard.press("Enter")
    page.get_by_role("status").get_by_text("cannot be continued").wait_for()
    page.get_by_role("button", name="Continue in a repaired copy").click()
    page.get_by_text("Opened a repaired copy").wait_for()
    copy_id = str(page.evaluate("decodeURIComponent(location.hash.split('=')[1])"))
    assert copy_id != "imported-broken"
    composer = page.get_by_label("Message (Enter sends, Shift+Enter adds a line)")
    assert composer.input_value() == "Never answered"  # ready to send again
    site.sim.reply_with("Now answered")
    replies = page.locator(".message.assistant:not(.streaming)").count()
    composer.press("Enter")
    page.locator(".message.assistant:not(.streaming)").nth(replies).wait_for()
    stored = _stored(site, copy_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[2]["content"] == "Never answered"
    assert [m["content"] for m in _stored(site, "imported-broken")] == [m["content"] for m in broken]
