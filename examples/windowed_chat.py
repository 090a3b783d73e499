"""The guides' sliding window (``messages[-20:]``) done safely: ``LastTurns(n)`` cuts only at turn
boundaries, so a request never starts with an assistant message or separates a tool_use from its tool_result.
The stored log keeps every message; only the request is windowed.

Run: ANTHROPIC_API_KEY=... python examples/windowed_chat.py
"""

import anthropic

from claude_history import Chat, LastTurns, open_store

client = anthropic.Anthropic()
chat = Chat(
    client,
    model="claude-sonnet-4-6",
    store=open_store("memory://"),
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
    print(chat.send(question).content[0].text)

print(f"({len(chat.messages)} messages stored: the window shapes requests, never the log)")
