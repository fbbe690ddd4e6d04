# podshim for a node that runs it in a container (a DaemonSet): privileged, in the host's PID,
# network and mount namespaces, with the host's /run/containerd, /run/podshim, /run/netns,
# /var/lib/podshim, /etc/cni/net.d, /opt/cni/bin, /var/log/pods and /sys/fs/cgroup mounted
# (README: Running in production). Not built by this project's CI (there is no Docker engine
# there); test/unit/dockerfile.test.ts checks every COPY source exists and that the build
# stage runs the README's build commands, and scripts/dockerfile-build-stage.mjs runs the
# build stage's steps without Docker.
FROM node:20-bookworm-slim AS build
# No .git in the build context: pass the commit for --version (docker build --build-arg PODSHIM_COMMIT=$(git rev-parse --short=12 HEAD)).
ARG PODSHIM_COMMIT=unknown
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY proto ./proto
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      containernetworking-plugins iproute2 iptables socat util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/podshim
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY proto ./proto
ENTRYPOINT ["node", "--max-semi-space-size=2", "/opt/podshim/dist/main.js"]
CMD ["--listen", "/run/podshim/podshim.sock"]
