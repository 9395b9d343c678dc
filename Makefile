# Familiar targets. TAG=... names the image for the docker targets.
TAG ?= latest
IMAGE ?= release-manager

.PHONY: build build_server test lint run bench bench-quick build_server_docker push_server_docker

build:
	cargo build --release --workspace

build_server:
	cargo build --release -p release-manager-server

# Installs missing test prerequisites (git, OpenSSH's sshd, ...) when it
# can, then runs every test.
test:
	bash .ci/install-deps
	cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

run:
	cargo run --release --bin release-manager -- start

# The release benchmark against the git command-line baselines (~2 min;
# bench-quick ~1 min). Never part of the tests.
bench:
	cargo bench -p release-manager-server --bench release

bench-quick:
	cargo bench -p release-manager-server --bench release -- --quick

build_server_docker:
	docker build -t $(IMAGE):$(TAG) .

push_server_docker:
	docker push $(IMAGE):$(TAG)
