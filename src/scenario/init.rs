//! `cqrs-bench init`: a commented starter scenario that runs as it is (against the
//! embedded reference target) and shows every section worth knowing.

/// The starter scenario named `name`.
pub fn starter_scenario(name: &str) -> String {
    let name = name.replace(['"', '\\'], "_");
    STARTER.replace("{NAME}", &name)
}

// The `#:schema` directive must come first (taplo reads it only at the top): editors with
// taplo (Even Better TOML) complete and check the fields from the file `init` writes beside
// the starter (`schema::SCHEMA_FILE`; a path relative to this file, so it works offline and
// always matches the binary that wrote it).
const STARTER: &str = r#"#:schema ./cqrs-bench.schema.json
# A cqrs-bench scenario: one workload against one target.
# Run it:       cqrs-bench run {NAME}.toml
# Check it:     cqrs-bench validate {NAME}.toml
# Editors:      the line above points taplo / Even Better TOML at cqrs-bench.schema.json
#               (cqrs-bench schema scenario > cqrs-bench.schema.json refreshes it)
# Override:     cqrs-bench run {NAME}.toml --set load.stages.0.rate=800
name = "{NAME}"
description = "What this workload represents"
seed = 1                               # every random choice is reproducible from it

[target]
kind = "embedded"                      # "embedded" (reference system in-process) | "http"
projectors = 2
timeout = "2s"
# kind = "http"
# base_url = "http://127.0.0.1:3030"
# headers = { Authorization = "Bearer ${API_TOKEN}" }   # ${ENV} is never written to results

[load]
model = "open"                         # "open": arrivals at a rate | "closed": fixed users
max_in_flight = 256                    # requests outstanding at once
warmup = "2s"                          # measured, excluded from SLO verdicts
stages = [
  { duration = "5s", from = 10, to = 200 },   # linear ramp, operations/s
  { duration = "10s", rate = 200 },           # constant
]

[mix]
read_write_ratio = "4:1"               # queries : commands
keys = { count = 1000, distribution = "zipf", exponent = 1.1, prefix = "acct-" }
# distribution: uniform | zipf (exponent) | hotspot (hot_fraction, hot_traffic) | sequential | latest

[[setup]]                              # once per key before the load
path = "/accounts/{{key}}/open"
body = '{"owner": "{NAME}"}'
expect_status = [201, 409]
rate = 2000

[[command]]
name = "deposit"
weight = 3
path = "/accounts/{{key}}/deposit"
body = '{"amount": {{int 1 100}}, "ref": "{{ref}}"}'
expect_status = [200]
capture = { version = "/version" }     # the account's version after it, for [projection]

[[command]]
name = "withdraw"
weight = 1
path = "/accounts/{{key}}/withdraw"
body = '{"amount": {{int 1 20}}, "ref": "{{ref}}"}'
expect_status = [200]
capture = { version = "/version" }
reject_status = [409]                  # a business refusal: not an error, no event

[[query]]
name = "get_account"
weight = 9
path = "/accounts/{{key}}"               # balance, version and the last 100 refs
expect_status = [200, 404]

[[query]]
name = "account_refs"
weight = 0                             # not in the load: [verify] reads it
path = "/accounts/{{key}}/refs"        # every applied ref, 1000 a page (?page=N)
expect_status = [200, 404]

# A create whose id the server makes: no {{key}}, capture the id, reuse it.
# [[command]]
# name = "create"
# path = "/things"
# capture = { id = { from = "header:location", regex = "/things/([^/?]+)$" } }  # or "/id", "$.data.id", "status"
# creates_key = "id"
# [[command]] ... keys = "created" ... path = "/things/{{key}}/rename"

[projection]                           # read-your-write lag probe
sample = 0.1
query = "get_account"
until = "/version >= {{capture.version}}"  # or "/refs contains {{ref}}"; SELECTOR contains|matches VALUE, SELECTOR ==|!=|>=|>|<=|< VALUE, count(SELECTOR) >= N
                                       # SELECTOR: JSON pointer "/refs" or JSONPath "$.data[*].describe"
poll_interval = "5ms"
timeout = "5s"

[verify]                               # every acknowledged ref applied exactly once
settle = "10s"
query = "account_refs"                 # a query without {{key}} (a global list) is read once per sweep
applied_refs = "/refs"                 # refs are found inside strings and objects too
page = { param = "page", start = 1 }   # read page after page (&page=N) until one has no refs
# value = "/balance"                   # value accounting: the number must equal initial + deltas
# deltas = { deposit = "/amount", withdraw = "-/amount" }

[slo]
command_latency_p95 = "200ms"
query_latency_p95 = "100ms"
projection_lag_p99 = "500ms"
duplicates = 0
missed = 0
# value_mismatches = 0
command_error_rate = 0.001
query_error_rate = 0.001
"#;

#[cfg(test)]
mod tests {
    /// taplo reads `#:schema` only in the file's header: the very first line here.
    #[test]
    fn the_starter_points_editors_at_the_schema_file() {
        let starter = super::starter_scenario("demo");
        let first = starter.lines().next().unwrap_or_default();
        assert_eq!(first, format!("#:schema ./{}", crate::scenario::schema::SCHEMA_FILE));
    }
}
