"""saving_history.py with AsyncAnthropic, AsyncChat and the async SQLite store (never blocks the event loop).

Run: ANTHROPIC_API_KEY=... python examples/saving_history_async.py "My name is Alice."
     ANTHROPIC_API_KEY=... python examples/saving_history_async.py "What was my first message?"
"""

import asyncio
import os
import sys

import anthropic

from claude_history import AsyncChat, open_async_store


async def main() -> None:
    store = open_async_store("sqlite:///" + os.environ.get("CHATS_DB", "chats.db"))
    chat = AsyncChat(
        anthropic.AsyncAnthropic(),
        model="claude-sonnet-4-6",
        store=store,
        session_id=os.environ.get("CHAT_SESSION", "alice"),
        max_tokens=1024,
    )
    await chat.load()
    print(f"(session {chat.session_id}: {len(chat.messages)} messages so far)")

    question = " ".join(sys.argv[1:]) or "What was my first message?"
    print(f"> {question}")
    print((await chat.send(question)).content[0].text)
    print(f"(saved: {len(chat.messages)} messages; cost so far ${chat.cost:.6f})")
    await store.aclose()


asyncio.run(main())
