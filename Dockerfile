# coquin's container image: `docker build -t coquin .`
# It starts the way Toxiproxy's image does (ENTRYPOINT the server, CMD ["-host=0.0.0.0"]), so compose files
# and testcontainers modules written for ghcr.io/shopify/toxiproxy run it unchanged:
#   docker run -p 8474:8474 -p 8666-8697:8666-8697 coquin -host=0.0.0.0 -config=/config/toxiproxy.json
# Proxies listen on the ports their config gives; 8666-8697 is the range testcontainers' modules use.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src src
COPY behaviors behaviors
COPY bench bench
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json LICENSE README.md ./
COPY configs configs
USER node
EXPOSE 8474
HEALTHCHECK --interval=10s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:8474/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["-host=0.0.0.0"]
