-- segment: the rule language (design.md §3) — the type segment.rule and the
-- functions that evaluate and compile it.  Reference: doc/rules.md.

CREATE TYPE segment.rule;

CREATE FUNCTION segment.rule_in(cstring) RETURNS segment.rule
  AS 'MODULE_PATHNAME', 'rule_in'
  LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_in(cstring) IS
  'Input of segment.rule: parse, resolve fields, segments and stages, type-check, store the canonical form';

CREATE FUNCTION segment.rule_out(segment.rule) RETURNS cstring
  AS 'MODULE_PATHNAME', 'rule_out'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_out(segment.rule) IS
  'Output of segment.rule: the canonical text';

CREATE FUNCTION segment.rule_recv(internal) RETURNS segment.rule
  AS 'MODULE_PATHNAME', 'rule_recv'
  LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_recv(internal) IS
  'Binary input of segment.rule: a version byte and the text, checked like text input';

CREATE FUNCTION segment.rule_send(segment.rule) RETURNS bytea
  AS 'MODULE_PATHNAME', 'rule_send'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_send(segment.rule) IS
  'Binary output of segment.rule: a version byte and the canonical text';

CREATE TYPE segment.rule (
  INPUT = segment.rule_in,
  OUTPUT = segment.rule_out,
  RECEIVE = segment.rule_recv,
  SEND = segment.rule_send,
  INTERNALLENGTH = VARIABLE,
  STORAGE = extended,
  CATEGORY = 'U'
);
COMMENT ON TYPE segment.rule IS
  'A typed, validated segment rule (design.md §3), stored in canonical form';

CREATE FUNCTION segment.rule_eq(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_eq'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_eq(segment.rule, segment.rule) IS
  'True when two rules have the same canonical text';

CREATE FUNCTION segment.rule_ne(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_ne'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_ne(segment.rule, segment.rule) IS
  'True when two rules have different canonical texts';

CREATE FUNCTION segment.rule_cmp(segment.rule, segment.rule) RETURNS integer
  AS 'MODULE_PATHNAME', 'rule_cmp'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_cmp(segment.rule, segment.rule) IS
  'Order of two rules by canonical text (bytewise): -1, 0 or 1';

CREATE FUNCTION segment.rule_lt(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_lt' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_lt(segment.rule, segment.rule) IS 'Canonical text sorts before';
CREATE FUNCTION segment.rule_le(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_le' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_le(segment.rule, segment.rule) IS 'Canonical text sorts before or equal';
CREATE FUNCTION segment.rule_gt(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_gt' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_gt(segment.rule, segment.rule) IS 'Canonical text sorts after';
CREATE FUNCTION segment.rule_ge(segment.rule, segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_ge' LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_ge(segment.rule, segment.rule) IS 'Canonical text sorts after or equal';

CREATE FUNCTION segment.rule_hash(segment.rule) RETURNS integer
  AS 'MODULE_PATHNAME', 'rule_hash'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_hash(segment.rule) IS
  'Hash of the canonical text, consistent with = (hash joins, GROUP BY, DISTINCT)';

CREATE OPERATOR pg_catalog.= (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_eq,
  COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
  RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
COMMENT ON OPERATOR pg_catalog.= (segment.rule, segment.rule) IS 'Same canonical rule';

CREATE OPERATOR pg_catalog.<> (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_ne,
  COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
  RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR pg_catalog.<> (segment.rule, segment.rule) IS 'Different canonical rules';

CREATE OPERATOR pg_catalog.< (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_lt,
  COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
  RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
COMMENT ON OPERATOR pg_catalog.< (segment.rule, segment.rule) IS 'Canonical text sorts before';
CREATE OPERATOR pg_catalog.<= (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_le,
  COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
  RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
COMMENT ON OPERATOR pg_catalog.<= (segment.rule, segment.rule) IS 'Canonical text sorts before or equal';
CREATE OPERATOR pg_catalog.> (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_gt,
  COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
  RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR pg_catalog.> (segment.rule, segment.rule) IS 'Canonical text sorts after';
CREATE OPERATOR pg_catalog.>= (
  LEFTARG = segment.rule, RIGHTARG = segment.rule, PROCEDURE = segment.rule_ge,
  COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
  RESTRICT = scalargesel, JOIN = scalargejoinsel
);
COMMENT ON OPERATOR pg_catalog.>= (segment.rule, segment.rule) IS 'Canonical text sorts after or equal';

CREATE OPERATOR CLASS segment.rule_ops DEFAULT FOR TYPE segment.rule USING btree AS
  OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=,
  OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>,
  FUNCTION 1 segment.rule_cmp(segment.rule, segment.rule);
COMMENT ON OPERATOR CLASS segment.rule_ops USING btree IS
  'Rules ordered by canonical text: ORDER BY, unique constraints, merge joins';

CREATE OPERATOR CLASS segment.rule_hash_ops DEFAULT FOR TYPE segment.rule USING hash AS
  OPERATOR 1 pg_catalog.=,
  FUNCTION 1 segment.rule_hash(segment.rule);
COMMENT ON OPERATOR CLASS segment.rule_hash_ops USING hash IS
  'Rules hashed by canonical text: GROUP BY, DISTINCT, hash joins';

CREATE FUNCTION segment.jsonb_number(doc jsonb, key text) RETURNS numeric
  AS 'MODULE_PATHNAME', 'rule_jsonb_number'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.jsonb_number(jsonb, text) IS
  'The number under key in a jsonb object, or NULL when absent or not a number (one lookup; compiled rules read number fields with it)';

CREATE FUNCTION segment.rule_sql(rule segment.rule) RETURNS text
  AS 'MODULE_PATHNAME', 'rule_sql'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_sql(segment.rule) IS
  'The one SQL statement segment.members runs for the rule (for EXPLAIN)';

CREATE FUNCTION segment.rule_condition_sql(rule segment.rule, per_contact boolean DEFAULT false)
  RETURNS text
  AS 'MODULE_PATHNAME', 'rule_condition_sql'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_condition_sql(segment.rule, boolean) IS
  'The rule as a never-NULL boolean SQL expression over alias c (segment.contacts): set form for the whole base, or per-contact form (correlated index probes)';

CREATE FUNCTION segment.rule_dependencies(rule segment.rule) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'rule_dependencies'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_dependencies(segment.rule) IS
  'What the rule reads: events, fields, tags, segments, stages, and whether time alone can change it';

CREATE FUNCTION segment.rule_to_jsonb(rule segment.rule) RETURNS jsonb
  AS 'MODULE_PATHNAME', 'rule_to_jsonb'
  LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_to_jsonb(segment.rule) IS
  'The rule in the JSON form of UI builders (doc/rules.md); segment.rule_from_jsonb reads it back';

CREATE FUNCTION segment.matches(contact_id bigint, rule segment.rule) RETURNS boolean
  AS 'MODULE_PATHNAME', 'rule_matches'
  LANGUAGE C STRICT STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION segment.matches(bigint, segment.rule) IS
  'Does the contact satisfy the rule now (segment.now())?  False for an unknown contact';

CREATE FUNCTION segment.members(rule segment.rule) RETURNS SETOF bigint
  LANGUAGE plpgsql STRICT STABLE PARALLEL RESTRICTED
  SET search_path = pg_catalog, pg_temp
  -- hashed subplans (NOT / OR of event conditions) must fit in memory
  SET work_mem = '64MB'
  AS $$
BEGIN
  RETURN QUERY EXECUTE segment.rule_sql(rule);
END
$$;
COMMENT ON FUNCTION segment.members(segment.rule) IS
  'Every contact satisfying the rule now, computed by one SQL statement (segment.rule_sql)';

CREATE FUNCTION segment.count(rule segment.rule) RETURNS bigint
  LANGUAGE plpgsql STRICT STABLE PARALLEL RESTRICTED
  SET search_path = pg_catalog, pg_temp
  SET work_mem = '64MB'
  AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE 'SELECT count(*) FROM (' || segment.rule_sql(rule) || ') m' INTO n;
  RETURN n;
END
$$;
COMMENT ON FUNCTION segment.count(segment.rule) IS
  'How many contacts satisfy the rule now (one SQL statement)';

CREATE FUNCTION segment.rule_from_jsonb(rule jsonb) RETURNS segment.rule
  AS 'MODULE_PATHNAME', 'rule_from_jsonb'
  LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.rule_from_jsonb(jsonb) IS
  'The rule of a JSON form (doc/rules.md), checked like text input; exact inverse of segment.rule_to_jsonb';
