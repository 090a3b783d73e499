"""A system prompt kept with the session: set it once, every request of the session carries it.

Run: ANTHROPIC_API_KEY=... python examples/system_prompt.py
"""

import anthropic

from claude_history import Chat, open_store

client = anthropic.Anthropic()
chat = Chat(
    client,
    model="claude-sonnet-4-6",
    store=open_store("memory://"),
    system="You are a patient maths tutor. Answer in one short paragraph.",
    max_tokens=1024,
)

for question in ["What is a prime number?", "What was my first message?"]:
    print(f"> {question}")
    print(chat.send(question).content[0].text)
