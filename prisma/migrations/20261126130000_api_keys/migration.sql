-- CreateTable
CREATE TABLE "api_keys" (
    "id" VARCHAR(40) NOT NULL,
    "name" VARCHAR(128) NOT NULL,
    "prefix" VARCHAR(16) NOT NULL,
    "salt" BYTEA NOT NULL,
    "secret_hash" BYTEA NOT NULL,
    "scopes" VARCHAR(16)[],
    "rate_limit_per_minute" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_prefix_key" ON "api_keys"("prefix");
