"""system_prompt.py with AsyncAnthropic and AsyncChat.

Run: ANTHROPIC_API_KEY=... python examples/system_prompt_async.py
"""

import asyncio

import anthropic

from claude_history import AsyncChat, open_async_store


async def main() -> None:
    client = anthropic.AsyncAnthropic()
    chat = AsyncChat(
        client,
        model="claude-sonnet-4-6",
        store=open_async_store("memory://"),
        system="You are a patient maths tutor. Answer in one short paragraph.",
        max_tokens=1024,
    )
    for question in ["What is a prime number?", "What was my first message?"]:
        print(f"> {question}")
        print((await chat.send(question)).content[0].text)


asyncio.run(main())
