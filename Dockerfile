# stratad in a container: libtorch from PyPI's torch==2.13.0 (CUDA-enabled; the same image uses a
# GPU when the container is given one), the daemon and its worker program (strata-worker, which
# stratad finds beside itself and starts per run; the only one that loads libtorch), data in /data.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY scripts/setup-libtorch.sh scripts/setup-libtorch.sh
RUN PIP_BREAK_SYSTEM_PACKAGES=1 bash scripts/setup-libtorch.sh
COPY . .
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The binaries' rpath points at /app/.torch/torch/lib, so libtorch stays at the same path.
COPY --from=build /app/.torch /app/.torch
COPY --from=build /app/target/release/stratad /app/target/release/strata-worker /app/target/release/strata /usr/local/bin/
# An unprivileged user (uid 10001, what deploy/k8s runs as): stratad reads client-named files with
# its rights. /data is made theirs before it becomes a volume, so a new named volume is too.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data strata \
  && mkdir -p /data && chown strata:strata /data
USER 10001:10001
# Both listeners on every interface of the container: stratad then wants a token (STRATA_TOKEN_FILE,
# as deploy/k8s gives it) or STRATA_INSECURE_NO_AUTH (as docker-compose.yml, publishing the ports on
# the host's loopback only).
ENV STRATA_LISTEN=0.0.0.0:50051 STRATA_DASHBOARD_LISTEN=0.0.0.0:8080 STRATA_DATA_DIR=/data
VOLUME /data
EXPOSE 50051 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["stratad"]
