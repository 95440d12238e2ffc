# syntax=docker/dockerfile:1
# Build: npm installs exactly what package-lock.json pins, Bun included (it is the npm package
# "bun"), so the Bun that compiles the binary is the one the tests ran on, not an image tag that
# could drift from the lockfile.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no third-party install script runs. Bun's own postinstall is the one needed:
# it links the platform's binary from @oven/bun-linux-* (also in the lockfile), no download.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && node node_modules/bun/install.js
COPY tsconfig.json ./
COPY src ./src
RUN npm run build
# The final image has no shell to mkdir with. A named volume mounted on /data takes the owner of
# the image's /data, so it must exist there, owned by nonroot (65532), or SQLite cannot write.
RUN mkdir /data

# Run: glibc and CA certificates only, as a non-root user, SQLite on the /data volume.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/authgate /usr/local/bin/authgate
COPY --from=build --chown=65532:65532 /data /data
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=/data/authgate.db
VOLUME ["/data"]
EXPOSE 3000
USER nonroot:nonroot
# No shell in the image: the binary checks its own /healthz.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["/usr/local/bin/authgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/authgate"]
