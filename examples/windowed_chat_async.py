"""windowed_chat.py with AsyncAnthropic and AsyncChat.

Run: ANTHROPIC_API_KEY=... python examples/windowed_chat_async.py
"""

import asyncio

import anthropic

from claude_history import AsyncChat, LastTurns, open_async_store


async def main() -> None:
    client = anthropic.AsyncAnthropic()
    chat = AsyncChat(
        client,
        model="claude-sonnet-4-6",
        store=open_async_store("memory://"),
        context=LastTurns(3),  # send only the newest 3 turns, the new message included
        max_tokens=1024,
    )
    for question in [
        "Remember the word: apple.",
        "Remember the word: bicycle.",
        "Remember the word: canal.",
        "What was my first message?",  # the request starts at "bicycle": older turns are out of the window
    ]:
        print(f"> {question}")
        print((await chat.send(question)).content[0].text)

    print(f"({len(chat.messages)} messages stored: the window shapes requests, never the log)")


asyncio.run(main())
