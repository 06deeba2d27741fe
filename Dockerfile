# syntax=docker/dockerfile:1
# The one `totesys-cdc` binary (every subcommand) on Debian bookworm.
#
#   docker build -t totesys-cdc .        (or: docker compose build)
#
# Builder: the official Rust image, which already carries gcc, make, pkg-config and the
# OpenSSL and zlib headers that librdkafka (built from source by rdkafka-sys, TLS from
# the system OpenSSL) and aws-lc-sys need; installed explicitly so a slimmer base fails
# loudly here instead of deep inside a build script.
FROM rust:1.95.0-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target caches survive between builds; the binary is copied out of
# the cache mount so it lands in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cdc --bin totesys-cdc \
 && install -D -m 0755 target/release/totesys-cdc /out/totesys-cdc

# Runtime: the binary links libssl3/libcrypto3, zlib, libgcc_s and glibc dynamically
# (ldd target/release/totesys-cdc); zlib, libgcc_s and glibc are in the base image.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/totesys-cdc --shell /usr/sbin/nologin totesys-cdc \
 && install -d -o totesys-cdc -g totesys-cdc /var/lib/totesys-cdc /var/lib/totesys-cdc/capture
COPY --from=builder /out/totesys-cdc /usr/local/bin/totesys-cdc
USER 10001:10001
WORKDIR /var/lib/totesys-cdc
# Settings: --config FILE or TOTESYS_CDC_CONFIG (see deploy/config/totesys-cdc.toml).
# Health is probed over HTTP on each component's metrics address (/healthz, /readyz).
ENTRYPOINT ["totesys-cdc"]
CMD ["--help"]
