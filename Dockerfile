# syntax=docker/dockerfile:1
# Multi-stage build: compile (and build better-sqlite3 from source) in a full image, ship a slim one.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY clients/typescript/package.json clients/typescript/package.json
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY . .
RUN npx tsc -b && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    ROLLGATE_LISTEN=0.0.0.0:8080 \
    ROLLGATE_DB=/data/rollgate.db
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/clients/typescript/package.json ./clients/typescript/package.json
COPY --from=build /app/clients/typescript/dist ./clients/typescript/dist
COPY --from=build /app/scripts/healthcheck.mjs ./scripts/healthcheck.mjs
# The dashboard's assets (/ui/), read once at start from ui/ beside package.json.
COPY --from=build /app/ui ./ui
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# Listening beyond loopback needs tokens: without ROLLGATE_TOKENS_FILE (a mounted tokens file)
# the server refuses 0.0.0.0 and the container exits at once (or set ROLLGATE_INSECURE=on for a
# trusted network). See README "Docker".
# The healthcheck reads ROLLGATE_LISTEN and ROLLGATE_TLS_CERT (HTTPS when set): give settings
# as ROLLGATE_* variables, not `serve` flags, so that it checks what the server serves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "scripts/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
