# syntax=docker/dockerfile:1
#
# Conveyor engine image: the `conveyor` host, its plugins and the example
# pipelines, running as an unprivileged user. Two stages: the first compiles
# with Debian's toolchain and -dev packages, the second holds only the runtime
# libraries (no compiler, no headers).
#
#   docker build -t conveyor:0.1.0 .                   # where a Docker engine runs
#   scripts/build-image.sh                             # anywhere (buildah fallback)
#
# BASE_IMAGE lets a build without registry access use a locally imported
# bookworm image (scripts/build-image.sh passes localhost/bookworm-min).
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates cmake gcc libc6-dev ninja-build pkg-config \
      libcurl4-openssl-dev libmicrohttpd-dev librdkafka-dev libssl-dev libyaml-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads, so that editing tests or k8s/ keeps the cache.
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY sdk/ sdk/
COPY engine/ engine/
COPY plugins/ plugins/
COPY pipelines/ pipelines/
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX=/usr -DCONVEYOR_TESTS=OFF \
 && cmake --build /build \
 && DESTDIR=/out cmake --install /build --strip \
 && test -x /out/usr/bin/conveyor \
 && ls /out/usr/lib/conveyor/plugins/*.so >/dev/null

FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libcurl4 libmicrohttpd12 librdkafka1 libssl3 libyaml-0-2 zlib1g \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && groupadd --system --gid 10001 conveyor \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin conveyor
# The engine finds its plugins in <prefix>/lib/conveyor/plugins = /usr/lib/conveyor/plugins.
COPY --from=build /out/usr/ /usr/
COPY pipelines/ /etc/conveyor/pipelines/
# Containers are reached from outside their loopback: pipelines that read
# ${CONVEYOR_HTTP_LISTEN} listen on every interface; --listen overrides it.
ENV CONVEYOR_LOG_FORMAT=json \
    CONVEYOR_HTTP_LISTEN=0.0.0.0:8000
# Numeric so that Kubernetes can check runAsNonRoot without a passwd lookup.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["conveyor"]
CMD ["run"]
