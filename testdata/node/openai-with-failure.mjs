// Drives the official OpenAI client as an application would, with one
// deliberate failure: it lists the models, asks two chat completions (one
// streamed), then names a model the server does not serve, which must be
// answered 404. Prints one JSON line with what it got.
//
//   node openai-with-failure.mjs BASE_URL MODEL
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-openai-key", maxRetries: 0, timeout: 20000 });
const ask = { messages: [{ role: "user", content: "Explain Python decorators" }], max_tokens: 16 };

const models = await client.models.list();
const once = await client.chat.completions.create({ ...ask, model });
const stream = await client.chat.completions.create({ ...ask, model, stream: true, stream_options: { include_usage: true } });
let streamed = "";
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
let missing = null;
try {
  await client.chat.completions.create({ ...ask, model: "gpt-nonexistent" });
} catch (err) {
  missing = err.status ?? String(err);
}
if (missing !== 404) {
  console.error(`the unknown model got ${missing}, want 404`);
  process.exit(1);
}
console.log(JSON.stringify({ models: models.data.length, once: once.choices[0].message.content.length, streamed: streamed.length, missing }));
