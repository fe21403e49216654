// Runs the official TypeScript MCP SDK client over Streamable HTTP as an
// application would: connect (initialize, notifications/initialized, the
// standalone GET stream where the server offers one), list the tools, call
// echo and get-sum, end the session with DELETE when the server issued one,
// close. It does this `runs` times, one session each, and prints the tool
// results of every run as one JSON line.
//
//   node mcp-sdk-client.mjs http://127.0.0.1:PORT/mcp [runs]
//
// The SDK is the one server-everything depends on in the lockfile.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 1);
const out = [];
for (let i = 0; i < runs; i++) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "loadtape-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  const tools = await client.listTools();
  const echo = await client.callTool({ name: "echo", arguments: { message: `hello ${i}` } });
  const sum = await client.callTool({ name: "get-sum", arguments: { a: i, b: 2 } });
  out.push({ session: transport.sessionId ?? null, tools: tools.tools.length, echo, sum });
  if (transport.sessionId) {
    await transport.terminateSession();
  }
  await client.close();
}
console.log(JSON.stringify(out));
