-- What PostgreSQL pays per message for its 20 delivery rows (realtime_userevent), by what the
-- table carries: a plpgsql loop of 3,000 transactions, each one payload and 20 rows, in a scratch
-- database, first with the foreign key's check and the lone user_id index the table had before
-- realtime 0004, then without either (what the table has now). Prints the two loops' times:
--
--   psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE event_rows" && \
--     psql -h 127.0.0.1 -U postgres -d event_rows -f bench/event_rows.sql
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP TABLE IF EXISTS ue, ep CASCADE;
CREATE TABLE ep (id bigserial PRIMARY KEY, type text, data text, created_at timestamptz);
CREATE INDEX ON ep (created_at);
CREATE TABLE ue (id bigserial PRIMARY KEY, user_id bigint NOT NULL, seq bigint NOT NULL, payload_id bigint NOT NULL);
CREATE UNIQUE INDEX ue_user_seq ON ue (user_id, seq);
CREATE INDEX ue_payload ON ue (payload_id);
CREATE PROCEDURE deliveries(n int) LANGUAGE plpgsql AS $$
DECLARE payload bigint; seq bigint := coalesce((SELECT max(ue.seq) FROM ue), 0);
BEGIN
  FOR i IN 1..n LOOP
    INSERT INTO ep (type, data, created_at) VALUES ('new_message', repeat('x', 300), now()) RETURNING id INTO payload;
    seq := seq + 1;
    INSERT INTO ue (user_id, seq, payload_id) SELECT u, seq, payload FROM generate_series(1, 20) u;
    COMMIT;
  END LOOP;
END $$;
SET synchronous_commit = off;  -- the rows' CPU, not the disk's flush
\echo before realtime 0004: a deferred foreign key to the payload and an index on user_id alone
CREATE INDEX ue_user ON ue (user_id);
ALTER TABLE ue ADD CONSTRAINT ue_payload_fk FOREIGN KEY (payload_id) REFERENCES ep (id) DEFERRABLE INITIALLY DEFERRED;
\timing on
CALL deliveries(3000);
\timing off
\echo now: neither
DROP INDEX ue_user;
ALTER TABLE ue DROP CONSTRAINT ue_payload_fk;
\timing on
CALL deliveries(3000);
\timing off
DROP PROCEDURE deliveries;
DROP TABLE ue, ep;
