# The release manager server, with hamctl and artifact beside it.
# Build: docker build -t release-manager .   (or make build_server_docker)
# Try the demo: docker run -p 127.0.0.1:8080:8080 release-manager start --unauthenticated
# Serve it to others: docker run -p 8080:8080 -p 8081:8081 \
#   -e HAMCTL_AUTH_TOKEN=... -e ARTIFACT_AUTH_TOKEN=... release-manager
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked -p release-manager-server -p hamctl -p artifact \
 && cp target/release/release-manager target/release/hamctl target/release/artifact /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/release-manager --create-home release-manager
COPY --from=build /usr/local/bin/release-manager /usr/local/bin/hamctl /usr/local/bin/artifact /usr/local/bin/
USER 10001
# Inside a container, loopback is unreachable from outside: listen on every
# address. Without --config-repo this is the demo, which then needs both
# tokens (HAMCTL_AUTH_TOKEN, ARTIFACT_AUTH_TOKEN) or --unauthenticated.
ENV RELEASE_MANAGER_DATA_DIR=/var/lib/release-manager \
    RELEASE_MANAGER_LISTEN=0.0.0.0:8080 \
    RELEASE_MANAGER_HTTP_LISTEN=0.0.0.0:8081
VOLUME /var/lib/release-manager
EXPOSE 8080 8081
ENTRYPOINT ["release-manager"]
CMD ["start"]
