# syntax=docker/dockerfile:1
# The Switchboard proxy image: `docker build -t switchboard:0.1.0 .`
# The chart (helm/switchboard) runs it as user 65532 with a read-only root
# filesystem; the preStop hook runs `sleep`, which the runtime image provides.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace: cargo reads every member's manifest even to build one
# package. The proto crate compiles its .proto with protox, so no protoc.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard-proxy --bin switchboard \
    && install -D -m 0755 target/release/switchboard /out/switchboard

FROM debian:12-slim
RUN groupadd --system --gid 65532 switchboard \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin switchboard
COPY --from=build /out/switchboard /usr/local/bin/switchboard
USER 65532:65532
# Clients, app-server gRPC links (keep private), admin (/healthz, /readyz, /metrics).
EXPOSE 8080 7070 9090
ENTRYPOINT ["/usr/local/bin/switchboard"]
