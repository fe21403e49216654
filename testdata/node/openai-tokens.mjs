// Streams one chat completion with the official OpenAI client, with or
// without stream_options.include_usage, for loadtape's token counting.
// Usage: node openai-tokens.mjs BASE_URL usage|nousage   (BASE_URL ends in /v1)
// Prints one JSON line: the content chunks seen and the usage, if any.
import OpenAI from "openai";

const [baseURL, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-openai-key", maxRetries: 0, timeout: 20000 });
const req = {
  model: "chat-7b",
  messages: [{ role: "user", content: "Explain Python decorators" }],
  max_tokens: 30,
  stream: true,
};
if (mode === "usage") req.stream_options = { include_usage: true };
const stream = await client.chat.completions.create(req);
let contentChunks = 0;
let usage = null;
for await (const chunk of stream) {
  if (chunk.choices[0]?.delta?.content) contentChunks++;
  if (chunk.usage) usage = chunk.usage;
}
console.log(JSON.stringify({ contentChunks, usage }));
