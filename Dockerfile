# Built elsewhere: this machine has no Docker engine.
#   docker build -t approval-gateway .
#   docker run -p 8080:8080 -e JWT_SECRET=... -e BACKEND=admin-api:9000 -v approvals:/data approval-gateway
FROM golang:1.26-bookworm AS build
WORKDIR /src
# The gateway is the root module alone: the benchmark's and the tests'
# modules (go.work) are not built into it.
ENV GOWORK=off
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/gateway ./gateway && mkdir -p /out/data /out/config

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gateway /usr/local/bin/gateway
COPY --from=build /src/policies /etc/gateway/policies
COPY --from=build /src/Caddyfile /etc/gateway/Caddyfile
COPY --from=build --chown=nonroot:nonroot /out/data /data
COPY --from=build --chown=nonroot:nonroot /out/config /config
# The embedded etcd lives in the volume; set BACKEND to the admin API's address.
ENV APPROVAL_DATA=/data/approvals XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config
VOLUME ["/data"]
WORKDIR /etc/gateway
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run", "--config", "/etc/gateway/Caddyfile", "--adapter", "caddyfile"]
