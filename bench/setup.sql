-- bench/setup.sql — the benchmark database: the extension and the bench schema.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION segment;
CREATE EXTENSION plpython3u;
CREATE SCHEMA bench;
COMMENT ON SCHEMA bench IS 'Benchmark helpers and data (bench/), never part of the extension';

-- The peer of segment.render: Jinja2 in PL/Python, the compiled template cached in
-- SD (per backend, keyed by the template text) so only rendering is measured.
-- The context arrives as jsonb text and is decoded per row, as ours decodes jsonb.
CREATE FUNCTION bench.jinja(template text, context jsonb) RETURNS text
LANGUAGE plpython3u STRICT PARALLEL SAFE AS $$
import json
t = SD.get(template)
if t is None:
    import jinja2
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    t = SD[template] = env.from_string(template)
return t.render(json.loads(context))
$$;
COMMENT ON FUNCTION bench.jinja(text, jsonb) IS 'Render a Jinja2 template (cached compiled per backend)';
