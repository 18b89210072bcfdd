# syntax=docker/dockerfile:1
#
# One image for every component: the five static binaries of cmd/ in
# /usr/local/bin of a distroless image (no shell, no package manager, runs
# as the unprivileged user nonroot, uid 65532). Each container picks its
# binary by its command (docker-compose.yml). The health checks use
# `authctl probe`, the image having no curl. The file is checked by
# internal/deploycheck; docs/operations.md, "Deploy with Docker Compose".
#
#   docker build -t ameli-auth .

# At least go.mod's go line (1.26.0), pinned to one patch release.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The modules first, so that a change of the code alone reuses this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: static binaries, for an image without a C library;
# -trimpath: no build machine paths in them; -s -w: no symbol tables.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

# The certificates (SMTP over TLS) and /etc/passwd of the user nonroot
# come with the base image; the time zones are compiled in (time/tzdata).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
# 8080: the web front-end (AUTH_WEB_ADDR); 9090: each component's ops page
# (AUTH_HTTP_ADDR) as docker-compose.yml sets them.
EXPOSE 8080 9090
CMD ["/usr/local/bin/authctl", "--help"]
