-- CreateTable
CREATE TABLE "audit_events" (
    "id" UUID NOT NULL,
    "seq" BIGSERIAL NOT NULL,
    "event_type" VARCHAR(64) NOT NULL,
    "session_id" VARCHAR(128) NOT NULL,
    "payload" JSONB NOT NULL,
    "client_time" TIMESTAMPTZ(3),
    "received_at" TIMESTAMPTZ(3) NOT NULL,
    "persisted_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "api_key_id" VARCHAR(64),

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "audit_events_seq_key" ON "audit_events"("seq");

-- CreateIndex
CREATE INDEX "audit_events_event_type_seq_idx" ON "audit_events"("event_type", "seq" DESC);

-- CreateIndex
CREATE INDEX "audit_events_session_id_seq_idx" ON "audit_events"("session_id", "seq" DESC);
