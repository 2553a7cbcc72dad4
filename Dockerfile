# Build: docker build -t inferplane .   (used by compose.yaml)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin inferplane

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 inferplane
COPY --from=build /src/target/release/inferplane /usr/local/bin/inferplane
USER inferplane
EXPOSE 8080
ENTRYPOINT ["inferplane"]
CMD ["serve"]
