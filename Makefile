# keygate — `make help` lists the targets.
SHELL := /bin/bash
CONFIG ?= config/keygate.toml
CARGO ?= cargo

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: ## Build and serve on http://127.0.0.1:8080 (in-memory store, dev config); Ctrl-C stops it
	$(CARGO) build --release --bin keygate
	@$(start_keygate); \
	echo; \
	echo "  keygate      http://127.0.0.1:$(SERVE_PORT)  (in-memory store, $(CONFIG))"; \
	echo "  pages        http://127.0.0.1:$(SERVE_PORT)/  (sign in, My clients, Account)"; \
	echo "  API docs     http://127.0.0.1:$(SERVE_PORT)/docs"; \
	echo "  sign in as   demo / demo-password  (dev credentials: config/keygate.toml only)"; \
	echo "  a token      curl -s -u demo-service:demo-service-secret -d grant_type=client_credentials http://127.0.0.1:$(SERVE_PORT)/oauth/token"; \
	echo "  Ctrl-C stops it."; \
	echo; \
	wait $$kg

run-redis: ## Like run, on a loopback-only redis-server (target/redis, no persistence); Ctrl-C stops both
	$(CARGO) build --release --bin keygate
	@$(start_redis); \
	export KEYGATE_STORE_URL=redis://127.0.0.1:$(REDIS_PORT); \
	$(start_keygate); \
	echo; \
	echo "  keygate  http://127.0.0.1:$(SERVE_PORT)  (Redis store redis://127.0.0.1:$(REDIS_PORT), $(CONFIG))"; \
	echo "  the CLI  KEYGATE_STORE_URL=redis://127.0.0.1:$(REDIS_PORT) cargo run --release -- --config $(CONFIG) client list"; \
	echo "  Ctrl-C stops both (the Redis data is not kept)."; \
	echo; \
	wait $$kg

# The port keygate listens on in $(CONFIG): what run-redis, demo and
# mcp-demo wait for (tests/api/readme.rs sets it with KEYGATE_SERVER_LISTEN).
SERVE_PORT ?= 8080
# The loopback-only Redis of `make redis` and `make run-redis` (no
# persistence; noeviction, as keygate requires of a production Redis).
REDIS_PORT ?= 6379
REDIS_ARGS = --bind 127.0.0.1 --port $(REDIS_PORT) --save '' --appendonly no --maxmemory-policy noeviction

# Starts keygate (dev config, release build) in the background, waits for
# its port, and stops it when the recipe's shell exits (Ctrl-C included),
# together with anything started before it (the PIDs in $$stop).
define start_keygate
set -u; \
$(CARGO) run --release --quiet --bin keygate -- serve --config $(CONFIG) & kg=$$!; \
stop="$$kg $${stop:-}"; \
trap 'kill $$stop 2>/dev/null; wait $$stop 2>/dev/null' EXIT; \
trap 'exit 130' INT TERM; \
for _ in $$(seq 1 150); do \
  kill -0 $$kg 2>/dev/null || { echo "keygate did not start (is port $(SERVE_PORT) free?)" >&2; exit 1; }; \
  (exec 3<>/dev/tcp/127.0.0.1/$(SERVE_PORT)) 2>/dev/null && break; \
  sleep 0.2; \
done
endef

# Starts redis-server on 127.0.0.1:$(REDIS_PORT) in the background (working
# directory target/redis), waits for it, and stops it when the recipe's shell
# exits; refuses to start when the port is taken.
define start_redis
set -u; \
command -v redis-server >/dev/null || { echo "redis-server is missing: sudo apt-get install -y redis-server" >&2; exit 1; }; \
if (exec 3<>/dev/tcp/127.0.0.1/$(REDIS_PORT)) 2>/dev/null; then \
  echo "port $(REDIS_PORT) is taken (another Redis?): stop it, or run REDIS_PORT=6380 make run-redis" >&2; exit 1; \
fi; \
mkdir -p target/redis; \
redis-server $(REDIS_ARGS) --dir "$(CURDIR)/target/redis" --logfile "$(CURDIR)/target/redis/redis.log" & rs=$$!; \
stop="$$rs $${stop:-}"; \
trap 'kill $$stop 2>/dev/null; wait $$stop 2>/dev/null' EXIT; \
trap 'exit 130' INT TERM; \
for _ in $$(seq 1 50); do \
  kill -0 $$rs 2>/dev/null || { echo "redis-server did not start: see target/redis/redis.log" >&2; exit 1; }; \
  (exec 3<>/dev/tcp/127.0.0.1/$(REDIS_PORT)) 2>/dev/null && break; \
  sleep 0.1; \
done
endef

demo: ## Run keygate (dev config) and the demo client on http://127.0.0.1:3000; Ctrl-C stops both
	$(CARGO) build --release --bin keygate
	$(CARGO) build --release -p keygate-demo-client
	@$(start_keygate); \
	echo; \
	echo "  keygate      http://127.0.0.1:8080  (in-memory store, $(CONFIG))"; \
	echo "  demo client  http://127.0.0.1:3000  <- open this"; \
	echo "  sign in as   demo / demo-password"; \
	echo "  Ctrl-C stops both."; \
	echo; \
	$(CARGO) run --release --quiet -p keygate-demo-client

mcp-demo: ## Run keygate (dev config) and the example MCP server on http://127.0.0.1:3001/mcp; Ctrl-C stops both
	$(CARGO) build --release --bin keygate
	$(CARGO) build --release -p keygate-mcp-example
	@$(start_keygate); \
	echo; \
	echo "  keygate      http://127.0.0.1:8080  (in-memory store, $(CONFIG), open registration)"; \
	echo "  MCP server   http://127.0.0.1:3001/mcp  <- point an MCP client here (tools: whoami, add)"; \
	echo "  sign in as   demo / demo-password"; \
	echo "  a client     make mcp-deps && target/mcp-py2/bin/python tests/mcp/client.py http://127.0.0.1:3001/mcp demo demo-password 0"; \
	echo "  Ctrl-C stops both."; \
	echo; \
	$(CARGO) run --release --quiet -p keygate-mcp-example -- --issuer http://127.0.0.1:8080

test: test-deps mcp-deps oidc-deps ## Install what the tests need (redis-server, Chromium, Apache + mod_auth_openidc, nginx, the OpenAPI validator, the MCP and OpenID Connect clients), then run every test
	$(CARGO) build -p keygate-mcp-example
	$(CARGO) build -p keygate-demo-client
	$(CARGO) test --all-targets
	$(MAKE) --no-print-directory openapi-validate

test-deps: ## Install redis-server, redis-tools (redis-cli, for the cluster tests), jq, chromium + chromium-driver, apache2 + libapache2-mod-auth-openidc, nginx-light, systemd (apt) and openapi-spec-validator (pip) when missing
	@pkgs=""; \
	command -v redis-server >/dev/null 2>&1 || pkgs="$$pkgs redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || pkgs="$$pkgs redis-tools"; \
	command -v jq >/dev/null 2>&1 || pkgs="$$pkgs jq"; \
	chromium="$${KEYGATE_TEST_CHROMIUM:-/usr/bin/chromium}"; \
	driver="$${KEYGATE_TEST_CHROMEDRIVER:-$$(command -v chromedriver || echo /usr/bin/chromedriver)}"; \
	{ [ -x "$$chromium" ] && [ -x "$$driver" ]; } || pkgs="$$pkgs chromium chromium-driver"; \
	[ -x /usr/sbin/apache2 ] || pkgs="$$pkgs apache2"; \
	[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || pkgs="$$pkgs libapache2-mod-auth-openidc"; \
	[ -x /usr/sbin/nginx ] || pkgs="$$pkgs nginx-light"; \
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$$pkgs systemd"; \
	if [ -n "$$pkgs" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$pkgs (apt-get)"; \
	    lock="-o DPkg::Lock::Timeout=300"; \
	    apt-get update -qq $$lock && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$lock $$pkgs >/dev/null; \
	  else \
	    echo "missing:$$pkgs; run 'sudo apt-get update && sudo apt-get install -y$$pkgs'" >&2; exit 1; \
	  fi; \
	fi
	@python3 -c 'import openapi_spec_validator' 2>/dev/null || { \
	  echo "installing openapi-spec-validator (pip)"; \
	  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore openapi-spec-validator; }

mcp-deps: ## Install the pinned MCP SDK clients and conformance suite (pip into target/mcp-py*, npm ci in tests/mcp); skipped when current
	@CARGO_TARGET_DIR="$(or $(CARGO_TARGET_DIR),$(CURDIR)/target)" bash tests/mcp/setup.sh

oidc-deps: ## Install the pinned OpenID Connect relying parties (Authlib: pip into target/oidc-py; openid-client: npm ci in tests/oidc); skipped when current
	@CARGO_TARGET_DIR="$(or $(CARGO_TARGET_DIR),$(CURDIR)/target)" bash tests/oidc/setup.sh

openapi-validate: ## Validate the committed OpenAPI document with openapi-spec-validator
	python3 -m openapi_spec_validator openapi/openapi.json

openapi: ## Regenerate the committed OpenAPI copies in openapi/
	KEYGATE_BLESS=1 $(CARGO) test --test api openapi::committed_copies_are_current

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check, clippy (warnings are errors), the core alone (no `server` feature), the example MCP server and demo client, make deny
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --no-default-features -- -D warnings
	$(CARGO) clippy -p keygate-mcp-example --all-targets -- -D warnings
	$(CARGO) clippy -p keygate-demo-client --all-targets -- -D warnings
	$(MAKE) --no-print-directory deny

# cargo-deny, pinned: deny.toml is read by this version.
DENY_VERSION ?= 0.20.2
# Where cargo-deny looks for the RustSec advisory database (deny.toml `db-path`).
ADVISORY_DBS ?= $(or $(CARGO_HOME),$(HOME)/.cargo)/advisory-dbs

deny-tool: ## Install the pinned cargo-deny (DENY_VERSION) with cargo install when missing
	@cargo-deny --version 2>/dev/null | grep -qx 'cargo-deny $(DENY_VERSION)' || { \
	  echo "installing cargo-deny $(DENY_VERSION) (cargo install)"; \
	  $(CARGO) install --locked cargo-deny --version $(DENY_VERSION); }

# --hide-inclusion-graph: duplicate versions are warnings (deny.toml); run
# `cargo deny check bans` to see which crates pull each one in.
deny: deny-tool ## cargo deny (deny.toml): licences, banned and duplicate crates, sources (crates.io only)
	$(CARGO) deny check --hide-inclusion-graph bans licenses sources

audit: deny-tool ## cargo deny advisories against a local RustSec database (never fetched here)
	@ls -d $(ADVISORY_DBS)/advisory-db-*/.git >/dev/null 2>&1 || { \
	  echo "make audit: no RustSec advisory database in $(ADVISORY_DBS)." >&2; \
	  echo "  make audit never fetches it (the project's machines cannot reach its git host). Where" >&2; \
	  echo "  that host is reachable, 'cargo deny fetch db' clones it: copy the advisory-db-* directory" >&2; \
	  echo "  it made to $(ADVISORY_DBS)/ here (at most 90 days old) and run make audit again." >&2; \
	  exit 1; }
	$(CARGO) deny --offline check advisories

keys: ## Generate a new RS256 signing key in keys/ (ALG=ES256|EdDSA for others)
	$(CARGO) run --release -- --config $(CONFIG) keys generate --alg $(or $(ALG),RS256)

bench: ## Benchmark (release, a few minutes): endpoints vs the raw signing rate, memory, micro-benchmarks -> target/bench/report.md (BENCH_ARGS="--stores memory,redis,replica,cluster" adds Redis Cluster and store.wait_replicas: docs/scaling.md)
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing redis-server (apt-get)"; \
	    apt-get update -qq -o DPkg::Lock::Timeout=300 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 redis-server >/dev/null; \
	  else echo "redis-server is missing: run 'sudo apt-get install -y redis-server'" >&2; exit 1; fi; }
	$(CARGO) build --release --bin keygate --example bench
	rm -rf target/criterion
	$(CARGO) bench --bench hot_path -- --noplot
	target/release/examples/bench run $(BENCH_ARGS)

FUZZ_SECS ?= 60
# The pkce target needs only the pure core, so `make fuzz` builds it without
# keygate's `server` feature (--no-default-features; see fuzz/Cargo.toml).
FUZZ_OPTS = -max_total_time=$(FUZZ_SECS) -rss_limit_mb=2048 -print_final_stats=1
SCHEMATHESIS_SECS ?= 120

fuzz: ## Bounded fuzzing: each cargo-fuzz target for FUZZ_SECS, then schemathesis against openapi/ for SCHEMATHESIS_SECS
	@command -v cargo-fuzz >/dev/null 2>&1 || { echo "installing cargo-fuzz (cargo install)"; $(CARGO) install cargo-fuzz --locked; }
	@python3 -c 'import schemathesis' 2>/dev/null || { \
	  echo "installing schemathesis (pip)"; \
	  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore schemathesis; }
	cd fuzz && $(CARGO) fuzz build -s none
	cd fuzz && for t in token_request jwt_verify; do \
	  $(CARGO) fuzz run -s none $$t -- $(FUZZ_OPTS) || exit 1; \
	done
	cd fuzz && $(CARGO) fuzz run -s none --no-default-features pkce -- $(FUZZ_OPTS)
	$(CARGO) build --release --bin keygate
	scripts/schemathesis.sh $(SCHEMATHESIS_SECS)

redis: ## Run a foreground redis-server on 127.0.0.1:6379 for manual testing (no persistence)
	redis-server $(REDIS_ARGS)

ci: lint test ## What CI runs

.PHONY: help run run-redis demo mcp-demo test test-deps mcp-deps oidc-deps openapi-validate openapi fmt lint deny-tool deny audit keys bench fuzz redis ci
