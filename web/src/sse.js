// Server-sent events from a fetch Response (EventSource cannot POST nor send the key header).
export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

// Folds the API's stream events into the content blocks of the reply, as the SDKs' accumulators do.
export class Accumulator {
  constructor() {
    this.blocks = [];
    this.partial = new Map();
    this.stopReason = null;
  }

  add(data) {
    switch (data.type) {
      case "content_block_start":
        this.blocks[data.index] = structuredClone(data.content_block);
        break;
      case "content_block_delta": {
        const block = this.blocks[data.index];
        const delta = data.delta;
        if (delta.type === "text_delta") block.text = (block.text || "") + delta.text;
        else if (delta.type === "thinking_delta") block.thinking = (block.thinking || "") + delta.thinking;
        else if (delta.type === "input_json_delta") {
          const text = (this.partial.get(data.index) || "") + delta.partial_json;
          this.partial.set(data.index, text);
          try {
            block.input = JSON.parse(text);
          } catch {
            // incomplete JSON until the block ends
          }
        }
        break;
      }
      case "message_delta":
        if (data.delta && data.delta.stop_reason) this.stopReason = data.delta.stop_reason;
        break;
      default:
        break;
    }
  }
}
