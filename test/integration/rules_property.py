#!/usr/bin/python3
"""Property test of the rule language (run by rules_property.sh on its own cluster).

With a fixed seed: random contacts, events, tags, stages and segment members; then
many random rules over them.  For every rule and every contact it checks that
  - segment.matches(contact, r) agrees with segment.members(r) (one statement),
    called as a function and inlined into the calling query (segment.inline_members),
  - the per-contact form of segment.rule_condition_sql selects the same contacts,
  - segment.count(r) is the number of members,
  - segment.rule_from_jsonb(segment.rule_to_jsonb(r)) = r and (r::text)::segment.rule = r.
Prints TAP-ish lines; exits non-zero on any failure.
"""
import os
import random
import subprocess
import sys

SEED = int(os.environ.get("RULES_SEED", "20261123"))
N_CONTACTS = 240
N_RULES = int(os.environ.get("RULES_N", "400"))
rnd = random.Random(SEED)
PSQL = [os.path.join(os.environ["PGBIN"], "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"]


def psql(sql):
    p = subprocess.run(PSQL, input=sql, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"psql failed: {p.stderr}\n--- script head:\n{sql[:1500]}")
    return p.stdout


def q(s):
    return "'" + s.replace("'", "''") + "'"


EVENTS = ["purchase", "cart_add", "email_open", "page_view"]
CATEGORIES = ["golf", "tennis", "it's", "50%_off", None]
COUNTRIES = ["DE", "AT", "US", "FR"]
PLANS = ["free", "pro", "team"]
TAGS = ["VIP", "beta", "o'neil"]
STAGES = ["lead", "customer", "loyal"]
SEGMENTS = ["high_value", "o'k"]
QUOTED = ["it's", "x"]


def data_sql():
    out = ["SET timezone = 'UTC';",
           "SELECT segment.define_field('lifetime', 'number');",
           "SELECT segment.define_field('country', 'text');",
           f"SELECT segment.define_field('plan', 'enum', ARRAY[{', '.join(q(p) for p in PLANS)}]);",
           "SELECT segment.define_field('vip', 'boolean');",
           "SELECT segment.define_field('birthday', 'date');",
           "SELECT segment.define_field('renews_at', 'timestamp');",
           "SELECT segment.define_field('interests', 'text[]');",
           "INSERT INTO segment.segments (name) VALUES ('high_value'), ('o''k');",
           "INSERT INTO segment.stages (name, position) VALUES ('lead', 1), ('customer', 2), ('loyal', 3);"]
    for i in range(1, N_CONTACTS + 1):
        attrs = {}
        if rnd.random() < 0.8:
            attrs["lifetime"] = rnd.choice([0, 5, 50, 99.5, 100, 500, 1000, -3])
        if rnd.random() < 0.8:
            attrs["country"] = rnd.choice(COUNTRIES)
        if rnd.random() < 0.7:
            attrs["plan"] = rnd.choice(PLANS)
        if rnd.random() < 0.6:
            attrs["vip"] = rnd.random() < 0.5
        if rnd.random() < 0.6:
            attrs["birthday"] = f"{rnd.randint(1950, 2010)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        if rnd.random() < 0.5:
            attrs["renews_at"] = f"2030-01-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:00:00Z"
        if rnd.random() < 0.6:
            attrs["interests"] = rnd.sample(["golf", "tennis", "chess"], rnd.randint(0, 2))
        if rnd.random() < 0.5:
            attrs["score"] = rnd.choice([1, 2, 3, "x", True])
        import json
        status = rnd.choice(["subscribed", "pending", "unsubscribed"])
        created = f"2029-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        out.append(f"INSERT INTO segment.contacts (id, email, attrs, status, created_at) VALUES "
                   f"({i}, 'c{i}@example.com', {q(json.dumps(attrs))}, '{status}', '{created}');")
    for _ in range(N_CONTACTS * 5):
        c = rnd.randint(1, N_CONTACTS)
        if c % 7 == 0:
            continue  # some contacts never act
        t = rnd.choice(EVENTS)
        props = {}
        cat = rnd.choice(CATEGORIES)
        if cat is not None:
            props["category"] = cat
        if rnd.random() < 0.5:
            props["price"] = rnd.choice([1, 10, 25.5])
        amount = "NULL" if rnd.random() < 0.3 else str(rnd.choice([5, 20, 100, 300, 0.5]))
        day = rnd.randint(-400, 5)  # relative to the clock, a few in the future
        import json as j2
        out.append(f"SELECT segment.track({c}, {q(t)}, {q(j2.dumps(props))}, {amount}, "
                   f"timestamptz '2030-01-01 00:00+00' + interval '{day} days' + interval '{rnd.randint(0, 1439)} minutes');")
    for c in range(1, N_CONTACTS + 1):
        for tag in TAGS:
            if rnd.random() < 0.25:
                exp = rnd.choice(["NULL", "'2029-12-01'", "'2030-02-01'"])
                out.append(f"INSERT INTO segment.contact_tags (contact_id, tag, expires_at) VALUES ({c}, {q(tag)}, {exp});")
        if rnd.random() < 0.6:
            out.append(f"INSERT INTO segment.contact_stages (contact_id, stage) VALUES ({c}, {q(rnd.choice(STAGES))});")
        if rnd.random() < 0.3:
            out.append(f"INSERT INTO segment.segment_members (segment_id, contact_id) "
                       f"SELECT id, {c} FROM segment.segments WHERE name = {q(rnd.choice(SEGMENTS))};")
    return "\n".join(out)


CMPS = ["=", "!=", "<", "<=", ">", ">="]


def duration():
    n = rnd.choice([1, 2, 7, 30, 90, 365])
    return f"{n} {rnd.choice(['minute', 'hour', 'day', 'week', 'month', 'day'])}{'s' if n != 1 else ''}"


def time_lit():
    k = rnd.random()
    if k < 0.15:
        return "now"
    if k < 0.55:
        return f"{duration()} ago"
    if k < 0.65:
        return f"{duration()} from now"
    if k < 0.85:
        return f"date '2029-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}'"
    return f"timestamp '2029-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d} {rnd.randint(0, 23):02d}:30{rnd.choice(['', 'Z', '+02'])}'"


def num():
    return str(rnd.choice([0, 1, 2, 3, 5, 50, 100, 99.5, 500, -1]))


def string(vals):
    return q(rnd.choice(vals))


def prop_cond(depth):
    k = rnd.random()
    if depth < 2 and k < 0.2:
        return f"({prop_cond(depth + 1)} {rnd.choice(['and', 'or'])} {prop_cond(depth + 1)})"
    if k < 0.3:
        return f"not {prop_cond(depth + 1)}"
    k = rnd.random()
    if k < 0.35:
        return f"category {rnd.choice(['=', '!='])} {string([c for c in CATEGORIES if c])}"
    if k < 0.5:
        return f"category {rnd.choice(['contains', 'starts with', 'not ends with'])} {string(['o', '50%', 'it', 'f'])}"
    if k < 0.65:
        return f"amount {rnd.choice(CMPS)} {num()}"
    if k < 0.8:
        return f"price {rnd.choice(CMPS)} {num()}"
    if k < 0.9:
        return f"{rnd.choice(['category', 'price', 'amount'])} is {rnd.choice(['', 'not '])}null"
    return f"category in ({string(['golf', 'tennis'])}, {string(QUOTED)})"


def event_name():
    e = rnd.choice(EVENTS)
    return q(e) if rnd.random() < 0.2 else e


def window():
    k = rnd.random()
    if k < 0.5:
        return ""
    if k < 0.75:
        return f" within {duration()}"
    if k < 0.9:
        return f" since {time_lit()}"
    return f" between {time_lit()} and {time_lit()}"


def where():
    return f" where ({prop_cond(0)})" if rnd.random() < 0.3 else ""


def cond():
    k = rnd.random()
    if k < 0.07:
        return f"lifetime {rnd.choice(CMPS)} {num()}"
    if k < 0.11:
        return f"lifetime {rnd.choice(['', 'not '])}between {num()} and {num()}"
    if k < 0.15:
        return f"country {rnd.choice(['in', 'not in'])} ({string(COUNTRIES)}, {string(COUNTRIES)})"
    if k < 0.18:
        return f"country {rnd.choice(CMPS)} {string(COUNTRIES)}"
    if k < 0.21:
        return f"plan {rnd.choice(['=', '!='])} {string(PLANS)}"
    if k < 0.24:
        return f"vip {rnd.choice(['=', '!='])} {rnd.choice(['true', 'false'])}"
    if k < 0.27:
        return f"birthday {rnd.choice(CMPS)} {time_lit()}"
    if k < 0.30:
        return f"renews_at {rnd.choice(CMPS)} {time_lit()}"
    if k < 0.33:
        return f"interests {rnd.choice(['contains', 'not contains'])} {string(['golf', 'chess'])}"
    if k < 0.36:
        return f"{rnd.choice(['lifetime', 'country', 'interests', 'birthday', 'attrs.score'])} is {rnd.choice(['', 'not '])}null"
    if k < 0.39:
        return f"attrs.score {rnd.choice(CMPS[:2])} {rnd.choice(['1', '2', q('x'), 'true'])}"
    if k < 0.42:
        return f"email {rnd.choice(['contains', 'starts with', 'ends with', 'not contains'])} {string(['1', 'c2', '0@example.com'])}"
    if k < 0.45:
        return f"status {rnd.choice(['=', '!='])} {string(['subscribed', 'pending'])}"
    if k < 0.48:
        return f"created_at {rnd.choice(CMPS)} {time_lit()}"
    if k < 0.52:
        return f"tagged {string(TAGS)}"
    if k < 0.55:
        return f"in segment {string(SEGMENTS)}"
    if k < 0.59:
        return rnd.choice([f"stage {rnd.choice(CMPS)} {string(STAGES)}",
                           f"stage {rnd.choice(['in', 'not in'])} ({string(STAGES)}, {string(STAGES)})"])
    if k < 0.72:
        return f"did {rnd.choice(['', 'not '])}{event_name()}{where()}{window()}"
    if k < 0.80:
        return f"count({event_name()}{where()}){window()} {rnd.choice(CMPS)} {rnd.choice(['0', '1', '2', '3'])}"
    if k < 0.92:
        agg = rnd.choice(["sum", "avg", "min", "max"])
        prop = rnd.choice(["amount", "amount", "price"])
        return f"{agg}({event_name()}.{prop}{where()}){window()} {rnd.choice(CMPS)} {num()}"
    return f"last({event_name()}{where()}) {rnd.choice(CMPS)} {time_lit()}"


def stats_cond(e):
    """A condition that segment.event_stats decides from the contact's row of type e."""
    k = rnd.random()
    if k < 0.3:
        c = rnd.choice([f"did {e}", f"did not {e}", f"did {e} within {duration()}",
                        f"did not {e} within {duration()}", f"did {e} since {time_lit()}"])
    elif k < 0.5:
        c = f"count({e}) {rnd.choice(CMPS)} {rnd.choice(['0', '1', '2', '3'])}"
    elif k < 0.85:
        c = f"{rnd.choice(['sum', 'avg', 'min', 'max'])}({e}.amount) {rnd.choice(CMPS)} {num()}"
    else:
        c = f"last({e}) {rnd.choice(CMPS)} {time_lit()}"
    return f"not {c}" if rnd.random() < 0.25 else c


def rule(depth=0):
    k = rnd.random()
    if depth < 3 and k < 0.08:
        # several conditions on one event type under one and: a stats group
        e = event_name()
        parts = [stats_cond(e) for _ in range(rnd.randint(2, 3))]
        if rnd.random() < 0.4:
            parts.append(cond())
        rnd.shuffle(parts)
        return "(" + " and ".join(parts) + ")"
    if depth < 3 and k < 0.35:
        parts = [rule(depth + 1) for _ in range(rnd.randint(2, 3))]
        return "(" + f" {rnd.choice(['and', 'or'])} ".join(parts) + ")"
    if depth < 3 and k < 0.45:
        return f"not {rule(depth + 1)}"
    if k < 0.47:
        return rnd.choice(["true", "false"])
    return cond()


CHECK = r"""
SET timezone = 'UTC';
SET segment.clock_override = '2030-01-01 00:00:00+00';
CREATE TEMP TABLE rules (n int, src text);
CREATE FUNCTION pg_temp.check(src text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r segment.rule := src::segment.rule;
  m bigint[]; mi bigint[]; p bigint[]; pc bigint[]; cnt bigint;
BEGIN
  -- members() as a function call, then inlined into the query (a constant rule)
  PERFORM set_config('segment.inline_members', 'off', true);
  SELECT coalesce(array_agg(x ORDER BY x), '{}') INTO m FROM segment.members(r) x;
  PERFORM set_config('segment.inline_members', 'on', true);
  EXECUTE format('SELECT coalesce(array_agg(x ORDER BY x), ''{}'') FROM segment.members(%L) x', src) INTO mi;
  SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO p FROM segment.contacts WHERE segment.matches(id, r);
  EXECUTE 'SELECT coalesce(array_agg(c.id ORDER BY c.id), ''{}'') FROM segment.contacts c WHERE c.id = ANY($1) AND '
          || segment.rule_condition_sql(r, true)
     INTO pc USING (SELECT array_agg(id) FROM segment.contacts);
  cnt := segment.count(r);
  IF m <> mi THEN RETURN format('inlined members differs: called %s, inlined %s', m, mi); END IF;
  IF m <> p THEN RETURN format('matches differs from members: members %s, matches %s', m, p); END IF;
  IF m <> pc THEN RETURN format('per-contact condition differs from members: %s vs %s', pc, m); END IF;
  IF cnt <> cardinality(m) THEN RETURN format('count %s, members %s', cnt, cardinality(m)); END IF;
  IF segment.rule_from_jsonb(segment.rule_to_jsonb(r)) <> r THEN
    RETURN format('jsonb round trip: %s', segment.rule_from_jsonb(segment.rule_to_jsonb(r)));
  END IF;
  IF (r::text)::segment.rule <> r THEN RETURN 'text round trip'; END IF;
  RETURN 'ok ' || cardinality(m);
END
$$;
"""


def main():
    psql("CREATE EXTENSION segment;\n" + data_sql())
    stats = psql("SELECT count(*) FROM segment.events; SELECT count(*) FROM segment.event_stats;").split()
    print(f"# seed {SEED}: {N_CONTACTS} contacts, {stats[0]} events, {stats[1]} event_stats rows")
    rules = [rule() for _ in range(N_RULES)]
    values = ",\n".join(f"({i}, {q(r)})" for i, r in enumerate(rules))
    out = psql(CHECK + f"INSERT INTO rules VALUES {values};\n"
               "SELECT n || E'\\t' || pg_temp.check(src) FROM rules ORDER BY n;")
    failed = 0
    sizes = []
    for line in out.splitlines():
        n, res = line.split("\t", 1)
        n = int(n)
        if res.startswith("ok "):
            sizes.append(int(res[3:]))
            print(f"ok {n + 1} - {rules[n]}")
        else:
            failed += 1
            print(f"not ok {n + 1} - {rules[n]}\n# {res}")
    print(f"1..{len(rules)}")
    nontrivial = sum(1 for s in sizes if 0 < s < N_CONTACTS)
    print(f"# {nontrivial} of {len(sizes)} rules select some but not all contacts")
    if nontrivial < len(sizes) // 3:
        print("not ok - too few rules distinguish contacts; the generator is too weak")
        failed += 1
    sys.exit(1 if failed else 0)


main()
