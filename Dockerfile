# concord as a container image: the agent binary, also reachable as `consul`, so
# compose files and scripts written for the Consul image keep working.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /consul/data /consul/config
COPY --from=build /src/target/release/concord /bin/concord
RUN ln -s /bin/concord /bin/consul
# HTTP, DNS (TCP and UDP), server RPC, Serf LAN (TCP and UDP).
EXPOSE 8500 8600 8600/udp 8300 8301 8301/udp
VOLUME /consul/data
ENTRYPOINT ["/bin/concord"]
CMD ["agent", "-dev", "-client=0.0.0.0"]
