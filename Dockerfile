# Production image: the same `auditgraph` entry as `npx auditgraph`; the command picks the role
# (`serve`, `worker`, `all`, `migrate`). docs/operations.md describes running it.
FROM node:20-bookworm-slim

# AUDITGRAPH_DATA_DIR holds PGlite's files in the embedded mode only (no DATABASE_URL and
# REDIS_URL): mount a volume there (-v auditgraph-data:/var/lib/auditgraph) to keep them.
ENV NODE_ENV=production \
    AUDITGRAPH_DATA_DIR=/var/lib/auditgraph \
    NPM_CONFIG_UPDATE_NOTIFIER=false

WORKDIR /app

# Dependencies first, so a source change reuses this layer. tsx is a runtime dependency: it
# runs the TypeScript sources, so there is no build step; the dev tools stay out of the image.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY prisma ./prisma
COPY tsconfig.json ./

# The code stays owned by root and read-only to the service; only the data folder is writable.
RUN mkdir -p "$AUDITGRAPH_DATA_DIR" && chown node:node "$AUDITGRAPH_DATA_DIR"
USER node

# 8001/8002: the API (producer and query ports); 9464: /metrics and health of a worker-only process.
EXPOSE 8001 8002 9464

# Liveness for any role: the API answers /health on PRODUCER_PORT, a lone worker on
# METRICS_PORT. Readiness (database and queue reachable) is /health/ready, for load balancers:
# a database outage should take a replica out of rotation, not get it restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const e=process.env;Promise.any([e.PRODUCER_PORT||8001,e.METRICS_PORT||9464].map(p=>fetch('http://127.0.0.1:'+p+'/health').then(r=>{if(!r.ok)throw new Error(r.status)}))).then(()=>process.exit(0),()=>process.exit(1))"]

# Node runs as PID 1 and handles SIGTERM itself: the API stops accepting, the worker finishes
# its batch, and the process exits 0 (docs/operations.md, "Graceful shutdown").
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/auditgraph.mjs"]
CMD ["all"]
