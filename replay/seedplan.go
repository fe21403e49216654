package replay

// seedPlanYAML is /work/shared/seed-plan.md as a profile: section 2's three
// scenarios (ramps, five-minute levels, think times, task weights), each
// opened by section 4's one-user, two-minute baseline, the gateway's 15-minute
// stress level from section 5, and section 1's targets with its 80 % band.
const seedPlanYAML = `# The load-testing plan's three scenarios (seed-plan.md sections 1, 2, 4, 5).
# Every scenario starts with the plan's 1-user, 2-minute baseline.
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
  # "Database connection errors: 0" needs the database's connection errors as a kind of
  # their own: PostgreSQL refusing a connection, or the service's SQLAlchemy pool timing out.
  - {body: "too many connections|QueuePool limit", kind: db_connection}
targets:
  - {scenario: gateway, metric: p95, operation: all, max: 2s}
  - {scenario: gateway, metric: avg, operation: all, max: 1.5s}
  - {scenario: gateway, metric: error_rate, max: 1%}
  - {scenario: gateway, metric: rps, users: 100, min: 10}
  # The plan's RAG p95 < 3 s is, per its scenario 2, queries < 3 s and indexing < 5 s.
  - {scenario: rag, metric: p95, operation: rag.query, max: 3s}
  - {scenario: rag, metric: p95, operation: rag.index, max: 5s}
  - {scenario: rag, metric: error_rate, error_kind: vector_timeout, max: 0.1%}
  - {scenario: rag, metric: count, error_kind: db_connection, max: 0}
  - {scenario: mcp, metric: p95, operation: all, max: 5s}
  # "Command execution success > 99 %".
  - {scenario: mcp, metric: error_rate, max: 1%}
  - {scenario: mcp, metric: count, error_kind: sandbox_violation, max: 0}
acceptance: 0.8
`

// SeedPlanProfile returns the seed plan's profile YAML, as printed by
// `loadtape profile init`.
func SeedPlanProfile() []byte { return []byte(seedPlanYAML) }
