# syntax=docker/dockerfile:1
# Build: one static-ish executable from the lockfile.
FROM oven/bun:1.4.5-debian AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN bun install --frozen-lockfile --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN bun run build

# Run: glibc and CA certificates only, as a non-root user, SQLite on the /data volume.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/authgate /usr/local/bin/authgate
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
