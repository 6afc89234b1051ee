# The worker, the custodian-share webhook, the HTTP API, the CLI and the Portal simulator (same image, different command).
# Run from source through tsx.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY activities ./activities
COPY adapters ./adapters
COPY api ./api
COPY client ./client
COPY codec ./codec
COPY command-line ./command-line
COPY config ./config
COPY contracts ./contracts
COPY db ./db
COPY domain ./domain
COPY logging ./logging
COPY metrics ./metrics
COPY simulator ./simulator
COPY webhook ./webhook
COPY worker ./worker
COPY workflows ./workflows
COPY tsconfig.json ./
# Worker Versioning: the image has no .git to take the commit from, so its build id comes with it
# (docker build --build-arg TEMPORAL_BUILD_ID=0.2.0-$(git rev-parse --short=10 HEAD)); a versioned
# worker without one exits naming TEMPORAL_BUILD_ID (docs/changing-workflows.md).
ARG TEMPORAL_BUILD_ID=""
ENV TEMPORAL_BUILD_ID=${TEMPORAL_BUILD_ID}
USER node
CMD ["node", "--import", "tsx", "worker/main.ts"]
