# Developer recipes. `just --list` shows them.

# Run the whole product locally (private PostgreSQL under ./.inferplane).
demo *ARGS:
    cargo run -- demo {{ARGS}}

# The Scaleway simulator alone on 127.0.0.1:4010 (point INFERPLANE_SCALEWAY_API_URL at it).
sim *ARGS:
    cargo run -- sim scaleway {{ARGS}}

# An instance's history as an auditor reads it.
replay ID *ARGS:
    cargo run -- replay instance {{ID}} {{ARGS}}

# Every Rust test, on a private PostgreSQL unless DATABASE_URL is set (each test in its own
# process with a time limit: .config/nextest.toml).
test:
    cargo nextest run --workspace
    cargo test --workspace --doc

# What CI runs: formatting, lints, tests.
ci:
    bash .ci/run

# Lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks against raw PostgreSQL (release build); see docs/benchmarks.md.
bench *ARGS:
    cargo run --release -- bench {{ARGS}}

# Projection checkpoints and lag of the local demo database.
status:
    cargo run -- projections status

# Stop the private cluster that `cargo test` leaves running between runs.
test-pg-stop:
    dir="${INFERPLANE_TEST_PG_DIR:-${TMPDIR:-/tmp}/inferplane-test-pg-$(id -u)}"; \
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl -D $dir stop -m fast"; \
    else pg_ctl -D "$dir" stop -m fast; fi
