# The release manager server. Build: docker build -t release-manager .
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
ENV RELEASE_MANAGER_DATA_DIR=/var/lib/release-manager
VOLUME /var/lib/release-manager
EXPOSE 8080 8081
ENTRYPOINT ["release-manager"]
CMD ["start"]
