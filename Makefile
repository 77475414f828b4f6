# The two commands every user needs: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo "nextest run" || echo "test")

.PHONY: run build test test-sqlite test-postgres fuzz clients spec-lint openapi lint bench bench-smoke

run:
	$(CARGO) run --bin crm -- serve

build:
	$(CARGO) build --workspace --all-targets

## The whole suite on SQLite (with the spec fuzzer and the generated clients), then on a
## throwaway PostgreSQL cluster.
test: test-sqlite fuzz clients test-postgres bench-smoke

# The import test kills and restarts a real `crm` process, so the binary is built first.
test-sqlite:
	@echo "== tests on SQLite =="
	$(CARGO) build --bin crm
	env -u TEST_DATABASE_URL $(CARGO) $(NEXTEST) --workspace

test-postgres:
	@echo "== tests on PostgreSQL =="
	$(CARGO) build --bin crm
	tests/with-postgres.sh $(CARGO) $(NEXTEST) --workspace

## Schemathesis over every operation of the live spec, on a fresh SQLite database.
fuzz:
	@echo "== spec-driven fuzzing (schemathesis) =="
	tests/fuzz.sh

## The spec as client developers meet it (tests/clients/run.sh): the linter, TypeScript and
## Python clients generated from openapi/openapi.json and run against a live server, and
## the docs page in headless Chromium. Needs node, npm and chromium (.ci/run installs them).
clients:
	tests/clients/run.sh

spec-lint:
	tests/clients/run.sh lint

## Regenerate the committed OpenAPI document from the code.
openapi:
	$(CARGO) run -q --bin crm -- openapi > openapi/openapi.json

# cargo-deny: `cargo install cargo-deny --locked` (.ci/run installs it when missing).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) deny --log-level error check bans licenses sources
	tests/clients/run.sh lint

# Release server over `crm seed` data, driven by wrk (apt-get install wrk), on SQLite and
# PostgreSQL; writes bench/RESULTS.md. `make bench SCALE=1` is a million contacts.
bench:
	SCALE=$(or $(SCALE),0.1) bench/run.sh

# The bench, tiny and on the debug build, so it never rots (part of `make test`).
bench-smoke:
	SCALE=0.001 DURATION=1s CONNS=4 PROFILE=debug OUT=target/bench-smoke.md bench/run.sh >/dev/null
