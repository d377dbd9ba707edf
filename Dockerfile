# The worker in a container, for the docker-compose trial. It talks to the host's Docker
# through the mounted socket.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/zun-compute-rs /usr/local/bin/zun-compute-rs
ENTRYPOINT ["/usr/local/bin/zun-compute-rs"]
