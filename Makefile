# weft: the two commands are `make demo` and `make test`; both install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SYSTEM_TOOLS := etcd etcdctl ip bridge ping openssl iptables-restore
APT_PACKAGES := etcd-server etcd-client iproute2 iputils-ping openssl iptables

.PHONY: help deps system-deps node-deps build test unit demo demo-down bench soak interop clean

help:
	@echo "make demo       bring up a throwaway etcd and several hosts in network namespaces"
	@echo "make demo-down  remove what an interrupted demo left behind"
	@echo "make test       install what is missing, build, run every test (needs root)"
	@echo "make build      compile TypeScript to dist/ and bundle the agent"
	@echo "make bench      fleet-scale benches (about 7 minutes; figures vs same-run baselines)"
	@echo "make soak       about 10 minutes of churn and etcd restarts under traffic"
	@echo "make interop FLANNELD=/path/to/flanneld   a mixed fleet with a real flanneld (about 4 minutes)"

deps: system-deps node-deps

# Debian packages, installed only when a tool is missing (a fresh machine has none).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

# `npm ci`: installs exactly the committed lock (which lists every platform's optional
# packages, so it is complete on any machine) and never rewrites it.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-deps: node_modules/.package-lock.json

# tsc, then `weft agent` as one file with its code cache (dist/weft-agent.cjs: it starts faster; see build/bundle-agent.mjs).
# It starts from an empty dist/: a module whose source is gone must not linger there (it
# would still import at run time and ship in the package).
build: node-deps
	rm -rf dist
	npx tsc -p tsconfig.json
	node build/bundle-agent.mjs

# Tests are type-checked too (vitest itself only strips types).
test: deps build
	npx tsc -p tsconfig.test.json
	node test/run.mjs

unit: node-deps
	npx vitest run test/unit

demo: deps build
	node dist/testbed/demo.js

demo-down:
	@if [ -f dist/testbed/demo.js ]; then node dist/testbed/demo.js down; \
	else echo "dist/testbed/demo.js is missing; run \`make build\` first"; exit 1; fi

# Needs root (network namespaces); about 7 minutes on 2 cores. See docs/performance.md.
bench: deps build
	node bench/run-all.mjs

# About 10 minutes of churn with etcd restarts; MINUTES=N to change, SEED=N to replay a run
# (each run prints its seed). Not part of `make test`.
MINUTES ?= 10
SEED ?=
soak: deps build
	node dist/testbed/soak.js --minutes $(MINUTES) $(if $(SEED),--seed $(SEED))

# A mixed fleet of a real flanneld and weft agents in namespaces; not part of `make test`
# (a clone has no flanneld). See docs/flanneld.md for what it checks.
interop: deps build
	@if [ -z "$(FLANNELD)" ]; then echo "usage: make interop FLANNELD=/path/to/flanneld" >&2; exit 2; fi
	node dist/testbed/interop.js --flanneld "$(FLANNELD)"

clean:
	rm -rf dist
