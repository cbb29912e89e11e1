# cosocket in a container (docs/packaging.md): a build stage with Debian's -dev packages
# makes the Debian package (cpack), the runtime stage installs it, so apt brings exactly
# the runtime libraries its Depends name (dpkg-shlibdeps: libevent, LuaJIT, OpenSSL,
# PCRE2, libedit; plus lua-cjson and lua-resty-lrucache).
#
#   docker build -t cosocket .            (or: podman build -t cosocket .)
#   docker run --rm cosocket -e 'ngx.say(ngx.config.cosocket_version)'
#   docker run --rm -v "$PWD:/work" -w /work --network host cosocket script.lua
ARG DEBIAN=debian:bookworm-slim

FROM ${DEBIAN} AS build
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config dpkg-dev file \
      libevent-dev libluajit2-5.1-dev libssl-dev libpcre2-dev libedit-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOSOCKET_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" \
 && cd /build && cpack -G DEB \
 && mv /build/cosocket_*.deb /cosocket.deb

FROM ${DEBIAN}
COPY --from=build /cosocket.deb /tmp/cosocket.deb
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates /tmp/cosocket.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/cosocket.deb \
 && cosocket -e 'assert(require("resty.redis"))'
ENTRYPOINT ["cosocket"]
CMD ["--help"]
