"""streaming.py with AsyncAnthropic and AsyncChat.

Run: ANTHROPIC_API_KEY=... python examples/streaming_async.py
"""

import asyncio

import anthropic

from claude_history import AsyncChat, open_async_store


async def main() -> None:
    chat = AsyncChat(
        anthropic.AsyncAnthropic(),
        model="claude-sonnet-4-6",
        store=open_async_store("memory://"),
        max_tokens=1024,
    )
    for question in ["Tell me a short story about a lighthouse.", "What was my first message?"]:
        print(f"> {question}")
        async with chat.stream(question) as stream:
            async for text in stream.text_stream:
                print(text, end="", flush=True)
            final = await stream.get_final_message()
        print()
        print(f"({final.usage.output_tokens} output tokens)")

    print(f"({len(chat.messages)} messages in the history)")


asyncio.run(main())
