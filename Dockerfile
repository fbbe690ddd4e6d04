# podshim for a node that runs it in a container: mount the host's /run/containerd, /run/podshim,
# /var/lib/podshim, /etc/cni/net.d, /var/log/pods and run privileged in the host's namespaces.
# Not built by this project's CI (there is no Docker engine there).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json buf.gen.yaml ./
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
ENTRYPOINT ["node", "/opt/podshim/dist/main.js"]
CMD ["--listen", "/run/podshim/podshim.sock"]
