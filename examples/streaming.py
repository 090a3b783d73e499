"""Streaming a reply: ``chat.stream`` mirrors the SDK's MessageStream; the turn is committed when the stream
completes (a cut stream or Ctrl-C leaves the history unchanged).

Run: ANTHROPIC_API_KEY=... python examples/streaming.py
"""

import anthropic

from claude_history import Chat, open_store

chat = Chat(anthropic.Anthropic(), model="claude-sonnet-4-6", store=open_store("memory://"), max_tokens=1024)

for question in ["Tell me a short story about a lighthouse.", "What was my first message?"]:
    print(f"> {question}")
    with chat.stream(question) as stream:
        for text in stream.text_stream:
            print(text, end="", flush=True)
        final = stream.get_final_message()
    print()
    print(f"({final.usage.output_tokens} output tokens)")

print(f"({len(chat.messages)} messages in the history)")
