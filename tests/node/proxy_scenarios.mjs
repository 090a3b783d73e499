// Drives claude-history's stateful proxy with the official Node SDK; tests/node/test_node_proxy.py runs one
// scenario per process:  node proxy_scenarios.mjs <scenario> <service_url> <key> [other_tenant_key]
// and reads the JSON it prints. The client only ever sends its new message (or its tool results).
import Anthropic from '@anthropic-ai/sdk';

const [scenario, baseURL, key, otherKey] = process.argv.slice(2);
const MODEL = 'claude-sonnet-4-6';
const session = (id, headers = {}) =>
  new Anthropic({ apiKey: key, baseURL, maxRetries: 0, defaultHeaders: { 'x-session-id': id, ...headers } });
const WEATHER = {
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
};
const errorOf = (error) => ({ name: error.constructor.name, status: error.status, type: error.error?.error?.type });

const scenarios = {
  async multiTurn() {
    const client = session('node-chat');
    const replies = [];
    for (const text of ['Hello from Node', 'Tell me more', 'Thanks']) {
      const message = await client.messages.create({
        model: MODEL, max_tokens: 200, messages: [{ role: 'user', content: text }],
      });
      replies.push(message);
    }
    return { replies };
  },

  async stream() {
    const client = session('node-stream');
    const events = [];
    const stream = client.messages.stream({ model: MODEL, max_tokens: 200, messages: [{ role: 'user', content: 'Hi' }] });
    let text = '';
    stream.on('text', (piece) => { text += piece; });
    stream.on('streamEvent', (event) => { events.push(event.type); });
    const message = await stream.finalMessage();
    return { text, message, events };
  },

  async tools() {
    const client = session('node-tools');
    const first = await client.messages.create({
      model: MODEL, max_tokens: 300, tools: [WEATHER],
      messages: [{ role: 'user', content: 'What is the weather in Paris? Use get_weather.' }],
    });
    const use = first.content.find((block) => block.type === 'tool_use');
    const second = await client.messages.create({
      model: MODEL, max_tokens: 300, tools: [WEATHER],
      messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 21 C' }] }],
    });
    return { first, second };
  },

  async conflict() {
    const client = session('node-cas', { 'x-session-version': '7' });
    try {
      await client.messages.create({ model: MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'Hi' }] });
      return { error: null };
    } catch (error) {
      return { error: errorOf(error) };
    }
  },

  async otherTenant() {
    await session('node-private').messages.create({
      model: MODEL, max_tokens: 50, messages: [{ role: 'user', content: 'mine' }],
    });
    const other = new Anthropic({ apiKey: otherKey, baseURL, maxRetries: 0 });
    try {
      await other.get('/v1/sessions/node-private');
      return { error: null };
    } catch (error) {
      return { error: errorOf(error) };
    }
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario: ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(await run()));
