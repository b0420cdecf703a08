# Production image: the same `auditgraph` entry as `npx auditgraph`.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# tsx runs the TypeScript sources; the dev tools stay out of the image.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY prisma ./prisma
COPY tsconfig.json ./
USER node
EXPOSE 8001 8002
ENTRYPOINT ["node", "bin/auditgraph.mjs"]
CMD ["all"]
