# Familiar targets. TAG=... names the image for the docker targets.
TAG ?= latest
IMAGE ?= release-manager
# Where `make build` puts the three programs.
DIST ?= dist
# Extra flags for `make run`, e.g. ARGS="--listen 127.0.0.1:9090".
ARGS ?=
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
PROGRAMS := release-manager hamctl artifact

.PHONY: build build_server test test-tools lint layers proto-check artifact-schema deploy-check python-client-test node-client-test browser-example run readme-test bench bench-quick bench-upload-memory build_server_docker push_server_docker

# One optimised build of the server, hamctl and artifact, copied to dist/
# (about 5 minutes the first time on 2 cores, seconds after that).
build:
	cargo build --release --locked --bins
	mkdir -p $(DIST)
	cp $(addprefix $(TARGET_DIR)/release/,$(PROGRAMS)) $(DIST)/

build_server:
	cargo build --release --locked -p release-manager-server

# Builds (if needed), then serves the demo on 127.0.0.1:8080.
run: build
	./$(DIST)/release-manager start $(ARGS)

# Installs missing test prerequisites (git, OpenSSH's sshd, ...) when it
# can, then runs every test. The tests build in the dev profile: that is
# faster from scratch than an optimised build of the test binaries. The
# single sign-on tests run a real OpenID Connect provider (npm's
# oidc-provider), installed from npm into .tools/ as buf is.
OIDC_PROVIDER_VERSION ?= 9.13.3
test:
	bash .ci/install-deps
	$(MAKE) test-tools
	cargo test --workspace --locked

# What the tests run beside the Rust code, into .tools/: the OpenID Connect
# provider from npm, and moto's S3 server from PyPI (the import of the
# original release manager's S3 builds is tested against it, on loopback).
MOTO_ENV := .tools/moto
MOTO_VERSION ?= 5.2.6
test-tools:
	@[ -d .tools/node_modules/oidc-provider ] \
	  || npm install --prefix .tools --no-audit --no-fund --loglevel=error oidc-provider@$(OIDC_PROVIDER_VERSION)
	[ -x $(MOTO_ENV)/bin/python ] || python3 -m venv $(MOTO_ENV)
	[ -x $(MOTO_ENV)/bin/moto_server ] || $(MOTO_ENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'

# A client in Python generated from proto/ (grpcio-tools), against the
# real server: every RPC, error details, paging, resumed event streams; and
# hamctl's --output json compared with protobuf's canonical JSON.
PYTHON_ENV := .tools/python
python-client-test:
	cargo build --locked --bin release-manager --bin hamctl
	[ -x $(PYTHON_ENV)/bin/python ] || python3 -m venv $(PYTHON_ENV)
	$(PYTHON_ENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python_client/requirements.txt
	RELEASE_MANAGER_BIN=$(TARGET_DIR)/debug/release-manager HAMCTL_BIN=$(TARGET_DIR)/debug/hamctl \
	  $(PYTHON_ENV)/bin/python tests/python_client/test_api.py

# TypeScript clients generated from proto/ (protoc-gen-es; connect-es over
# gRPC and gRPC-Web, and grpc-js) against the real server, installed from
# npm into .tools/node_client (tests/node_client/package-lock.json).
NODE_TOOLS := .tools/node_client
NODE_BIN := PATH="$(CURDIR)/$(NODE_TOOLS)/node_modules/.bin:$$PATH" NODE_PATH="$(CURDIR)/$(NODE_TOOLS)/node_modules"
node-client-test:
	cargo build --locked --bin release-manager
	mkdir -p $(NODE_TOOLS)
	cp tests/node_client/package.json tests/node_client/package-lock.json $(NODE_TOOLS)/
	cd $(NODE_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	rm -rf tests/node_client/gen
	$(NODE_BIN) buf generate proto --template tests/node_client/buf.gen.yaml
	$(NODE_BIN) buf generate tests/node_client/third_party --template tests/node_client/buf.gen.yaml
	$(NODE_BIN) esbuild tests/node_client/client.test.ts --bundle --platform=node --format=cjs \
	  --target=node20 --log-level=warning --outfile=$(NODE_TOOLS)/client.test.cjs
	RELEASE_MANAGER_BIN=$(TARGET_DIR)/debug/release-manager RELEASE_MANAGER_ROOT=$(CURDIR) \
	  node --test $(NODE_TOOLS)/client.test.cjs

# Bundles the browser example (tests/node_client/browser/status_page.ts,
# connect-web over gRPC-Web) into tests/e2e/browser/status_page.js, the page
# the end-to-end test opens in Chromium (committed, so `cargo test` needs no
# npm; a client of an older schema keeps working as the schema grows, as
# every client must). Needs node-client-test's setup.
browser-example:
	$(NODE_BIN) esbuild tests/node_client/browser/status_page.ts --bundle --format=iife \
	  --target=chrome100 --minify --legal-comments=none --log-level=warning \
	  --outfile=tests/e2e/browser/status_page.js

# Runs the commands of README.md and then of the docs/ pages (in the order
# tests/readme_commands.py lists them), against a demo started the README's
# way (make run). Needs ports 8080 and 8081 free, and buf (for the `buf curl`
# example of docs/api.md: installed from npm into .tools/ if missing).
BUF_VERSION ?= 1.75.0
readme-test:
	@command -v buf >/dev/null || [ -x .tools/node_modules/.bin/buf ] \
	  || npm install --prefix .tools --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION)
	PATH="$(CURDIR)/.tools/node_modules/.bin:$$PATH" python3 tests/readme_commands.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The layering stays: no import circles between the top-level modules of
# any crate (each folder imports only the folders below it).
layers:
	for crate in server/src hamctl/src artifact/src cli-support/src src; do \
	  python3 .ci/module_cycles.py $$crate || exit 1; \
	done

# The public schema: buf lint (STANDARD), buf format, and buf breaking
# (FILE rules) against the last release tag (the committed baseline
# .ci/proto-baseline.json until there is one) and the commit before, with a
# self-test that deleting or renaming an RPC fails it (.ci/proto-breaking.sh).
BUF := PATH="$(CURDIR)/.tools/node_modules/.bin:$$PATH" buf
proto-check:
	@command -v buf >/dev/null || [ -x .tools/node_modules/.bin/buf ] \
	  || npm install --prefix .tools --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION)
	$(BUF) lint
	$(BUF) format --diff --exit-code
	PATH="$(CURDIR)/.tools/node_modules/.bin:$$PATH" bash .ci/proto-breaking.sh

# Writes docs/artifact.schema.json anew from the artifact.json types
# (src/spec/); a test fails while the two differ.
artifact-schema:
	RELEASE_MANAGER_WRITE_SCHEMA=1 cargo test --locked -p release-manager --lib spec::tests::the_published_schema_matches_the_types

# deploy/, the kustomize base, against Kubernetes' schemas (PyPI's
# kubernetes-validate, offline) and the installation's promises
# (.ci/deploy_check.py).
KUBEVAL_ENV := .tools/kubeval
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
deploy-check:
	[ -x $(KUBEVAL_ENV)/bin/python ] || python3 -m venv $(KUBEVAL_ENV)
	[ -x $(KUBEVAL_ENV)/bin/kubernetes-validate ] || $(KUBEVAL_ENV)/bin/pip install --quiet --disable-pip-version-check 'kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)'
	$(KUBEVAL_ENV)/bin/python .ci/deploy_check.py

# The release benchmark (small, large, and remote: git daemon behind a
# 20 ms delay) against the git command-line baselines (a few minutes;
# bench-quick about half). Never part of the tests.
bench:
	cargo bench -p release-manager-server --bench release

# The server's peak memory while 8 uploads of 31 MiB arrive at once (the
# figure in docs/operations.md). Never part of the tests.
bench-upload-memory: build
	DIST=$(DIST) server/benches/upload_memory.sh

bench-quick:
	cargo bench -p release-manager-server --bench release -- --quick

build_server_docker:
	docker build -t $(IMAGE):$(TAG) .

push_server_docker:
	docker push $(IMAGE):$(TAG)
