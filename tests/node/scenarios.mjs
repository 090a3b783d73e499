// Drives the simulator with the official Node SDK; tests/node/test_node_sdk.py runs one scenario per process:
//   node scenarios.mjs <scenario> <base_url> [max_retries]
// and reads the JSON it prints. The Python side arranges faults and limits on the simulator first.
import Anthropic from '@anthropic-ai/sdk';

const [scenario, baseURL, retries] = process.argv.slice(2);
const client = new Anthropic({ apiKey: 'test', baseURL, maxRetries: Number(retries ?? 0) });
const MODEL = 'claude-sonnet-4-6';
const HELLO = [{ role: 'user', content: 'Hello from Node' }];
const WEATHER = {
  name: 'get_weather',
  description: 'Get the current weather in a given location',
  input_schema: {
    type: 'object',
    properties: { location: { type: 'string', description: 'The city' } },
    required: ['location'],
  },
};

const scenarios = {
  async create() {
    const message = await client.messages.create({ model: MODEL, max_tokens: 200, messages: HELLO });
    return { message, requestId: message._request_id };
  },

  async stream() {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 200, messages: HELLO });
    let text = '';
    stream.on('text', (piece) => {
      text += piece;
    });
    const message = await stream.finalMessage();
    return { text, message };
  },

  async tools() {
    const ask = [{ role: 'user', content: 'What is the weather in Paris? Use get_weather.' }];
    const first = await client.messages.create({
      model: MODEL,
      max_tokens: 300,
      messages: ask,
      tools: [WEATHER],
      tool_choice: { type: 'tool', name: 'get_weather' },
    });
    const use = first.content.find((block) => block.type === 'tool_use');
    const second = await client.messages.create({
      model: MODEL,
      max_tokens: 300,
      tools: [WEATHER],
      messages: [
        ...ask,
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 21 C' }] },
      ],
    });
    return { first, second };
  },

  async error() {
    try {
      await client.messages.create({ model: MODEL, max_tokens: 50, messages: HELLO });
      return { error: null };
    } catch (err) {
      if (!(err instanceof Anthropic.APIError)) throw err;
      return {
        error: { name: err.constructor.name, status: err.status, body: err.error, requestId: err.requestID },
      };
    }
  },

  async invalid() {
    try {
      await client.messages.create({ model: MODEL, max_tokens: 50, messages: [] });
      return { error: null };
    } catch (err) {
      return { error: { name: err.constructor.name, status: err.status, body: err.error } };
    }
  },

  async streamError() {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 200, messages: HELLO });
    let text = '';
    stream.on('text', (piece) => {
      text += piece;
    });
    try {
      await stream.finalMessage();
      return { text, error: null };
    } catch (err) {
      return { text, error: { name: err.constructor.name, body: err.error } };
    }
  },

  async retries() {
    // Three calls in a row: the simulator's limit answers the later ones with 429 and retry-after,
    // which the SDK waits for before it retries.
    const replies = [];
    for (let n = 0; n < 3; n += 1) {
      const message = await client.messages.create({ model: MODEL, max_tokens: 20, messages: HELLO });
      replies.push(message.stop_reason);
    }
    return { replies };
  },

  async countTokens() {
    const count = await client.messages.countTokens({ model: MODEL, messages: HELLO });
    return { count };
  },

  async beta() {
    const message = await client.beta.messages.create({
      model: MODEL,
      max_tokens: 100,
      messages: HELLO,
      betas: ['context-management-2025-06-27'],
    });
    return { message };
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario: ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(await run()));
