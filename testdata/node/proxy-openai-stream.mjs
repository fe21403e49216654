// Drives the official OpenAI client through loadtape's recording proxy.
// Usage: node proxy-openai-stream.mjs BASE_URL [stream|once]
// Prints one JSON line: chunks received, the assembled content, the usage.
import OpenAI from "openai";

const [baseURL, mode = "stream"] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-test-proxy-key", maxRetries: 0, timeout: 20000 });
const params = {
  model: "qwen2.5-14b-instruct",
  messages: [{ role: "user", content: "Explain Python decorators" }],
  max_tokens: 150,
  temperature: 0.7,
};

if (mode === "once") {
  const r = await client.chat.completions.create(params);
  console.log(JSON.stringify({ chunks: 1, content: r.choices[0].message.content, usage: r.usage }));
} else {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let content = "";
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    content += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  console.log(JSON.stringify({ chunks, content, usage }));
}
