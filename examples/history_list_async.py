"""history_list.py with AsyncAnthropic and AsyncChat.

Run: ANTHROPIC_API_KEY=... python examples/history_list_async.py
"""

import asyncio

import anthropic

from claude_history import AsyncChat, open_async_store


async def main() -> None:
    # Reads ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL) from the environment.
    client = anthropic.AsyncAnthropic()
    chat = AsyncChat(client, model="claude-sonnet-4-6", store=open_async_store("memory://"), max_tokens=1024)

    for question in ["My name is Alice and I like sailing.", "What was my first message?"]:
        print(f"> {question}")
        reply = await chat.send(question)
        print(reply.content[0].text)

    print(f"({len(chat.messages)} messages in the history)")


asyncio.run(main())
