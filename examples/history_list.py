"""The guides' conversation with claude-history's Chat: the history is kept for you, and a failed call
leaves it exactly as it was (no dangling user message).

Run: ANTHROPIC_API_KEY=... python examples/history_list.py
"""

import anthropic

from claude_history import Chat, open_store

client = anthropic.Anthropic()  # reads ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL) from the environment
chat = Chat(client, model="claude-sonnet-4-6", store=open_store("memory://"), max_tokens=1024)

for question in ["My name is Alice and I like sailing.", "What was my first message?"]:
    print(f"> {question}")
    reply = chat.send(question)  # an anthropic.types.Message
    print(reply.content[0].text)

print(f"({len(chat.messages)} messages in the history)")
# chat.messages is a plain list of MessageParam dicts: you can hand it straight to client.messages.create.
