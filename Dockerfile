# One image for every role: aipress server | shard | edge | up.
#
#   docker build -t aipress .
#
# The build stage compiles bin/aipress; the runtime stage is Debian 12 with
# the packages `make deps` installs (scripts/deps.sh: MariaDB, PHP 8.2 FPM,
# WordPress, …), so a shard pod has everything a local shard has.
FROM docker.io/library/golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/aipress ./cmd/aipress

FROM docker.io/library/debian:12-slim
COPY scripts/deps.sh /usr/local/lib/aipress/deps.sh
# DEPS_NO_GO: the runtime needs no Go toolchain. deps.sh keeps Debian from
# starting the system-wide services; AIPress runs its own.
RUN DEPS_NO_GO=1 /usr/local/lib/aipress/deps.sh \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=build /out/aipress /usr/local/bin/aipress
# The shard agent creates a Unix user per site and runs MariaDB and php-fpm
# as their own users, so it runs as root inside its pod.
ENTRYPOINT ["/usr/local/bin/aipress"]
CMD ["--help"]
