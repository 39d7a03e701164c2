#!/usr/bin/python3
"""Run the Mustache spec (test/spec/mustache/*.json) through SQL.

Every case becomes one segment.render(template, data::jsonb, partials::jsonb)
call in a single psql session; the output is compared byte for byte with the
case's "expected".  Prints one line per case and a count per file.  Exits 1
when any case of a core module fails (optional modules are counted only).

    mustache_spec.py [--verbose]     (psql from PATH, PG* environment)
"""
import glob
import json
import os
import subprocess
import sys

CORE = ["comments", "delimiters", "interpolation", "inverted", "partials", "sections"]
here = os.path.dirname(os.path.abspath(__file__))
specdir = os.path.join(here, "..", "spec", "mustache")


def literal(s):
    return "'" + s.replace("'", "''") + "'"


def main():
    verbose = "--verbose" in sys.argv
    cases = []
    for path in sorted(glob.glob(os.path.join(specdir, "*.json"))):
        module = os.path.basename(path)[:-5]
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        for t in spec["tests"]:
            cases.append((module, t))
    lines = ["SET client_min_messages = warning;"]
    for i, (module, t) in enumerate(cases):
        lines.append(
            "SELECT %d, encode(convert_to(segment.render(%s, %s::jsonb, %s::jsonb), 'UTF8'), 'hex');"
            % (i, literal(t["template"]), literal(json.dumps(t["data"])),
               literal(json.dumps(t.get("partials", {})))))
    proc = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=0"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    got = {}
    for line in proc.stdout.splitlines():
        if "|" in line:
            n, hexed = line.split("|", 1)
            got[int(n)] = bytes.fromhex(hexed).decode("utf-8")
    per = {}
    core_failed = 0
    for i, (module, t) in enumerate(cases):
        ok = got.get(i) == t["expected"]
        p = per.setdefault(module, [0, 0])
        p[0 if ok else 1] += 1
        if not ok and module in CORE:
            core_failed += 1
        print("%-6s %s: %s" % ("ok" if ok else "FAILED", module, t["name"]))
        if not ok and (verbose or module in CORE):
            print("       template: %r" % t["template"])
            print("       expected: %r" % t["expected"])
            print("       got:      %r" % (got[i] if i in got else "(error)"))
    if proc.stderr.strip():
        print("psql messages:\n" + proc.stderr.strip())
    print()
    total = [0, 0]
    for module in sorted(per, key=lambda m: (m not in CORE, m)):
        ok, bad = per[module]
        kind = "core" if module in CORE else "optional"
        print("%-24s %-8s %3d passed, %3d failed" % (module, kind, ok, bad))
    core = [sum(per[m][k] for m in per if m in CORE) for k in (0, 1)]
    opt = [sum(per[m][k] for m in per if m not in CORE) for k in (0, 1)]
    print("core: %d/%d passed; optional: %d/%d passed" % (core[0], sum(core), opt[0], sum(opt)))
    return 1 if core_failed or sum(core) != 136 else 0


if __name__ == "__main__":
    sys.exit(main())
