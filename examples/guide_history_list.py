"""The guides' pattern, with the plain SDK: keep a list, append each turn, resend the whole list.

This is what claude-history replaces. It works until a call fails: the user message has already been
appended, so the list now ends with two user messages in a row, and nothing is saved anywhere.
Compare with history_list.py.

Run: ANTHROPIC_API_KEY=... python examples/guide_history_list.py
"""

import anthropic

client = anthropic.Anthropic()  # reads ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL) from the environment
messages = []


def chat(user_message: str) -> str:
    messages.append({"role": "user", "content": user_message})
    response = client.messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=messages)
    messages.append({"role": "assistant", "content": response.content})
    return response.content[0].text


for question in ["My name is Alice and I like sailing.", "What was my first message?"]:
    print(f"> {question}")
    print(chat(question))
print(f"({len(messages)} messages in the list)")
