package replay

// builtinYAML is the profile `loadtape profile init` prints: three
// scenarios for the three services of a typical AI stack, each opened by a
// one-user baseline, with targets and an acceptance band. docs/profile.md
// gives the reason for every value.
const builtinYAML = `# loadtape's built-in profile: a gateway, a RAG service and an MCP tool server.
# Every scenario starts with a 1-user, 2-minute baseline that later stages are compared with.
# docs/profile.md gives the reason for each value; edit them to your service.
scenarios:
  gateway:
    service: gateway
    mode: closed
    stages:
      - {users: 1, duration: 2m, name: baseline}
      - {users: 10, duration: 5m}
      - {users: 50, duration: 5m}
      - {users: 100, duration: 5m}
      - {users: 100, duration: 15m, name: stress}
    spawn_rate: 10
    think: {uniform: [2s, 5s]}
    mix: {chat.completions: 70, models.list: 20, health: 10}
  rag:
    service: rag
    mode: closed
    stages:
      - {users: 1, duration: 2m, name: baseline}
      - {users: 5, duration: 5m}
      - {users: 25, duration: 5m}
      - {users: 50, duration: 5m}
    spawn_rate: 5
    think: {uniform: [3s, 8s]}
    mix: {rag.query: 70, rag.index: 30}
  mcp:
    service: mcp
    mode: closed
    stages:
      - {users: 1, duration: 2m, name: baseline}
      - {users: 5, duration: 5m}
      - {users: 20, duration: 5m}
    spawn_rate: 5
    think: {uniform: [2s, 6s]}
    # file 40 (read/write), git 40 (status/log), web 20 (fetch_url, less the probe's share)
    mix:
      mcp.tools.call/read_file: 20
      mcp.tools.call/write_file: 20
      mcp.tools.call/git_status: 20
      mcp.tools.call/git_log: 20
      mcp.tools.call/fetch_url: 15
      mcp.sandbox_probe: 5
classify:
  # A database refusing a connection, or the service's SQLAlchemy pool timing out, is a
  # 5xx like any other: this gives it a kind of its own, so a target can count it.
  - {body: "too many connections|QueuePool limit", kind: db_connection}
targets:
  - {scenario: gateway, metric: p95, operation: all, max: 2s}
  - {scenario: gateway, metric: avg, operation: all, max: 1.5s}
  - {scenario: gateway, metric: error_rate, max: 1%}
  - {scenario: gateway, metric: rps, users: 100, min: 10}
  # Queries run inside a chat turn; indexing is not interactive and gets more room.
  - {scenario: rag, metric: p95, operation: rag.query, max: 3s}
  - {scenario: rag, metric: p95, operation: rag.index, max: 5s}
  - {scenario: rag, metric: error_rate, error_kind: vector_timeout, max: 0.1%}
  - {scenario: rag, metric: count, error_kind: db_connection, max: 0}
  - {scenario: mcp, metric: p95, operation: all, max: 5s}
  # Tool commands succeed 99 % of the time.
  - {scenario: mcp, metric: error_rate, max: 1%}
  - {scenario: mcp, metric: count, error_kind: sandbox_violation, max: 0}
acceptance: 0.8
`

// BuiltinProfile returns the built-in profile's YAML, as printed by
// `loadtape profile init`.
func BuiltinProfile() []byte { return []byte(builtinYAML) }
