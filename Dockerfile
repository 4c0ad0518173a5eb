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
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# Listening beyond loopback needs tokens: mount a tokens file and set ROLLGATE_TOKENS_FILE
# (or pass --insecure for a trusted network).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
