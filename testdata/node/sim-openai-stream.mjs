// Drives the official OpenAI client against loadtape's simulated gateway.
// Usage: node sim-openai-stream.mjs BASE_URL   (BASE_URL ends in /v1)
// Prints one JSON line: the streamed chunks, content, usage, finish reason,
// the non-streamed completion, the model list and the error the client
// raises for an unknown model.
import OpenAI from "openai";

const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-sim", maxRetries: 0, timeout: 20000 });
const params = {
  model: "qwen2.5-14b-instruct",
  messages: [{ role: "user", content: "Explain Python decorators" }],
  max_tokens: 40,
  temperature: 0.7,
};

const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
let content = "";
let usage = null;
let chunks = 0;
let finish = null;
let object = null;
for await (const chunk of stream) {
  chunks++;
  object = chunk.object;
  content += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  if (chunk.usage) usage = chunk.usage;
}
const once = await client.chat.completions.create({ ...params, model: "code-7b" });
const models = [];
for await (const m of client.models.list()) models.push(m.id);
let notFound = null;
try {
  await client.chat.completions.create({ ...params, model: "gpt-nonexistent" });
} catch (e) {
  notFound = { status: e.status, code: e.code, type: e.type };
}
console.log(JSON.stringify({
  chunks, content, usage, finish, object,
  once: { object: once.object, content: once.choices[0].message.content, usage: once.usage },
  models, notFound,
}));
