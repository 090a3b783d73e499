// A multi-turn chat through claude-history's stateful proxy with the official Node SDK
// (npm install @anthropic-ai/sdk). The service keeps the history: each request sends only the new message.
//   claude-history keys create --owner acme        # prints the key
//   claude-history serve --port 8080
//   CLAUDE_HISTORY_URL=http://127.0.0.1:8080 CLAUDE_HISTORY_KEY=chk_... node proxy_chat.mjs
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  apiKey: process.env.CLAUDE_HISTORY_KEY,
  baseURL: process.env.CLAUDE_HISTORY_URL ?? 'http://127.0.0.1:8080',
  defaultHeaders: { 'x-session-id': process.env.SESSION_ID ?? 'node-example' },
});

for (const question of ['What is the capital of France?', 'And its population?']) {
  const reply = await client.messages.create({
    model: 'claude-sonnet-4-6',
    max_tokens: 300,
    messages: [{ role: 'user', content: question }], // only the new message: the service adds the history
  });
  console.log(`> ${question}\n${reply.content[0].text}\n`);
}
