# weft: the two commands are `make demo` and `make test`; both install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SYSTEM_TOOLS := etcd etcdctl ip bridge ping openssl
APT_PACKAGES := etcd-server etcd-client iproute2 iputils-ping openssl

.PHONY: help deps system-deps node-deps build test unit demo demo-down bench clean

help:
	@echo "make demo       bring up a throwaway etcd and several hosts in network namespaces"
	@echo "make demo-down  remove what an interrupted demo left behind"
	@echo "make test       install what is missing, build, run every test (needs root)"
	@echo "make build      compile TypeScript to dist/"

deps: system-deps node-deps

# Debian packages, installed only when a tool is missing (a fresh machine has none).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages (missing:$$missing)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

# `npm install` (not `npm ci`): with the committed lock it installs the locked versions, while
# npm 11's `ci` refuses this lock over rollup's platform-specific optional packages that npm
# itself leaves out of it (npm/cli#4828 and friends).
node_modules/.package-lock.json: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

node-deps: node_modules/.package-lock.json

build: node-deps
	npx tsc -p tsconfig.json

test: deps build
	node test/run.mjs

unit: node-deps
	npx vitest run test/unit

demo: deps build
	node dist/testbed/demo.js

demo-down:
	@if [ -f dist/testbed/demo.js ]; then node dist/testbed/demo.js down; \
	else echo "dist/testbed/demo.js is missing; run \`make build\` first"; exit 1; fi

bench: deps build
	@echo "no benches yet"

clean:
	rm -rf dist
