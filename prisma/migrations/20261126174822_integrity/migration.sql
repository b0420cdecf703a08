-- CreateTable
CREATE TABLE "audit_log_leaves" (
    "leaf_index" BIGINT NOT NULL,
    "seq" BIGINT NOT NULL,
    "event_id" UUID NOT NULL,
    "leaf_hash" BYTEA NOT NULL,

    CONSTRAINT "audit_log_leaves_pkey" PRIMARY KEY ("leaf_index")
);

-- CreateTable
CREATE TABLE "integrity_checkpoints" (
    "id" BIGINT NOT NULL,
    "first_leaf" BIGINT NOT NULL,
    "tree_size" BIGINT NOT NULL,
    "last_seq" BIGINT NOT NULL,
    "range_root" BYTEA NOT NULL,
    "previous_root" BYTEA NOT NULL,
    "root_hash" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "key_id" VARCHAR(64) NOT NULL,
    "signature" BYTEA NOT NULL,

    CONSTRAINT "integrity_checkpoints_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "integrity_retention" (
    "id" BIGSERIAL NOT NULL,
    "through_tree_size" BIGINT NOT NULL,
    "through_seq" BIGINT NOT NULL,
    "cutoff" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "integrity_retention_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "audit_log_leaves_seq_key" ON "audit_log_leaves"("seq");

-- CreateIndex
CREATE UNIQUE INDEX "audit_log_leaves_event_id_key" ON "audit_log_leaves"("event_id");

-- CreateIndex
CREATE UNIQUE INDEX "integrity_checkpoints_tree_size_key" ON "integrity_checkpoints"("tree_size");

-- Append-only history (written by hand: Prisma does not model triggers).
-- audit_events refuses UPDATE always, and DELETE unless the retention path
-- (src/store/integrity-store.ts) set `auditgraph.retention` for its transaction.
-- A superuser can still disable the triggers; the hash log and signed checkpoints
-- are what make that detectable.
CREATE FUNCTION "auditgraph_refuse_event_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('auditgraph.retention', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only: % refused (retention is the only way to remove events)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION "auditgraph_refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER "audit_events_append_only" BEFORE UPDATE OR DELETE ON "audit_events"
  FOR EACH ROW EXECUTE FUNCTION "auditgraph_refuse_event_change"();
CREATE TRIGGER "audit_events_no_truncate" BEFORE TRUNCATE ON "audit_events"
  FOR EACH STATEMENT EXECUTE FUNCTION "auditgraph_refuse_change"();

CREATE TRIGGER "audit_log_leaves_append_only" BEFORE UPDATE OR DELETE ON "audit_log_leaves"
  FOR EACH ROW EXECUTE FUNCTION "auditgraph_refuse_change"();
CREATE TRIGGER "audit_log_leaves_no_truncate" BEFORE TRUNCATE ON "audit_log_leaves"
  FOR EACH STATEMENT EXECUTE FUNCTION "auditgraph_refuse_change"();

CREATE TRIGGER "integrity_checkpoints_append_only" BEFORE UPDATE OR DELETE ON "integrity_checkpoints"
  FOR EACH ROW EXECUTE FUNCTION "auditgraph_refuse_change"();
CREATE TRIGGER "integrity_checkpoints_no_truncate" BEFORE TRUNCATE ON "integrity_checkpoints"
  FOR EACH STATEMENT EXECUTE FUNCTION "auditgraph_refuse_change"();

CREATE TRIGGER "integrity_retention_append_only" BEFORE UPDATE OR DELETE ON "integrity_retention"
  FOR EACH ROW EXECUTE FUNCTION "auditgraph_refuse_change"();
