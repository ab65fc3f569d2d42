# berth's image: one binary on a slim base with git (berth fetches with the git CLI) and the helm and
# kustomize binaries it renders with, built from their Go modules at the versions the tests use.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p berth

FROM golang:1.25-bookworm AS tools
RUN GOBIN=/out go install helm.sh/helm/v3/cmd/helm@v3.21.4 \
    && GOBIN=/out go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.1

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/berth /usr/local/bin/berth
COPY --from=tools /out/helm /out/kustomize /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["run"]
