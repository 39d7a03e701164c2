#!/usr/bin/python3
"""The segment benchmark suite (run by bench/run, which starts and stops the cluster).

Every benchmark measures ours and its peer in the same run, several times, and
reports the median with min and max; the ratio is always computed from those
medians.  ratio = our speed / the peer's speed, so higher is better and the
target is the smallest acceptable ratio; benchmarks without a peer have an
absolute target.  A benchmark whose feature is not in the extension yet prints
"not built yet".  Correctness checks (results equal the peer's, not timings)
run in every mode; --check runs only them, at small scale, and exits non-zero
on a mismatch.
"""
import argparse
import csv
import datetime
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PGBIN = os.environ.get("PGBIN", "")

MODES = {
    # contacts, events, timed repetitions, pgbench seconds x runs, untimed pgbench
    # warm-up seconds before the track comparisons (see pgbench), render rows,
    # Jinja2 rows, messages drained, transactional sends, matches() loop size
    "full": dict(contacts=1_000_000, events=10_000_000, reps=5, pgb_secs=10, pgb_runs=5, warm_secs=90,
                 render_rows=1_000_000, jinja_rows=100_000, messages=100_000, sends=1000,
                 matches_loop=10_000, refresh_reps=3, drain_runs=2, million=1_000_000),
    "quick": dict(contacts=50_000, events=500_000, reps=3, pgb_secs=3, pgb_runs=2, warm_secs=9,
                  render_rows=50_000, jinja_rows=5_000, messages=5_000, sends=100,
                  matches_loop=2_000, refresh_reps=2, drain_runs=3, million=1_000_000),
    # 1/4 scale, between the two (bench/run --mid): where a cost that grows with the
    # data set shows before a full run is worth its half hour.
    "mid": dict(contacts=250_000, events=2_500_000, reps=3, pgb_secs=5, pgb_runs=2, warm_secs=30,
                render_rows=250_000, jinja_rows=25_000, messages=20_000, sends=200,
                matches_loop=5_000, refresh_reps=2, drain_runs=2, million=1_000_000),
    "check": dict(contacts=20_000, events=200_000, reps=1, pgb_secs=2, pgb_runs=1, warm_secs=0,
                  render_rows=2_000, jinja_rows=500, messages=500, sends=20,
                  matches_loop=2_000, refresh_reps=1, drain_runs=1, million=0),
}
SEED = 0.42
CLIENTS, THREADS = 4, 2


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def lit(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


# ---------------------------------------------------------------- psql access

def psql(sql, timing=False, check=True):
    """Run a script in one psql session; returns stdout."""
    args = [os.path.join(PGBIN, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    script = ("\\timing on\n" if timing else "") + sql
    p = subprocess.run(args, input=script, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"psql failed: {p.stderr.strip()}\n--- script:\n{sql[:2000]}")
    return p.stdout


def set_clock(ts):
    """Freeze segment.now() at ts in every session this script opens (psql and
    pgbench, through PGOPTIONS), or let it run again (None).  The sending worker
    is never affected: it does not read our PGOPTIONS."""
    if ts is None:
        os.environ.pop("PGOPTIONS", None)
    else:
        os.environ["PGOPTIONS"] = "-c segment.clock_override=" + ts.replace(" ", "\\ ")


def value(sql):
    return psql(sql).strip()


def timed_statements(stmts, reps, warmup=True):
    """Run each statement reps times in one session, interleaved in ABBA order
    (so neither side always runs on the warmer cache).  Returns, per statement,
    a list of (ms, first output line)."""
    order = []
    if warmup:
        order += list(range(len(stmts)))
    for r in range(reps):
        seq = list(range(len(stmts)))
        order += seq if r % 2 == 0 else seq[::-1]
    script = ""
    for i in order:
        script += f"\\echo @@{i}\n{stmts[i].rstrip().rstrip(';')};\n"
    out = psql(script, timing=True)
    results = [[] for _ in stmts]
    blocks = re.split(r"^@@(\d+)\n", out, flags=re.M)[1:]
    seen = [0] * len(stmts)
    for idx, body in zip(blocks[0::2], blocks[1::2]):
        i = int(idx)
        m = re.search(r"^Time: ([0-9.]+) ms", body, flags=re.M)
        first = body.split("\n", 1)[0]
        seen[i] += 1
        if warmup and seen[i] == 1:
            continue
        results[i].append((float(m.group(1)), first))
    return results


def have(*functions):
    """Are these functions of schema segment installed?"""
    names = ",".join(lit(f) for f in functions)
    n = value(f"SELECT count(DISTINCT proname) FROM pg_proc WHERE pronamespace = 'segment'::regnamespace "
              f"AND proname IN ({names})")
    return int(n) == len(functions)


# ---------------------------------------------------------------- results

class Stat:
    """Median, min and max of repeated measurements."""

    def __init__(self, samples):
        self.samples = list(samples)
        self.median = statistics.median(self.samples)
        self.min = min(self.samples)
        self.max = max(self.samples)


UNITS = {"ms": "ms", "s": "s", "us": "µs", "tps": "tx/s", "msg/s": "msg/s", "rows/s": "rows/s", "MB": "MB"}
TIME_UNITS = {"ms", "s", "us"}


def fmt_num(x):
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_stat(st, unit):
    if st is None:
        return "-"
    if isinstance(st, str):
        return st
    if len(st.samples) == 1:
        return f"{fmt_num(st.median)} {UNITS[unit]}"
    return f"{fmt_num(st.median)} {UNITS[unit]} ({fmt_num(st.min)}-{fmt_num(st.max)})"


class Results:
    def __init__(self, mode):
        self.mode = mode
        self.rows = []
        self.mismatches = []

    def add(self, name, unit, ours, peer=None, target=None, absolute=None, note=""):
        """ours/peer: Stat, None (no peer), or a string such as 'not built yet'.
        target: minimum ratio (our speed / peer speed); absolute: (op, limit)
        on our median, for benchmarks without a peer."""
        ratio = None
        verdict = "-"
        if isinstance(ours, Stat) and isinstance(peer, Stat) and ours.median > 0 and peer.median > 0:
            ratio = peer.median / ours.median if unit in TIME_UNITS else ours.median / peer.median
        if isinstance(ours, str):
            verdict = ours
        elif ratio is not None and target is not None:
            verdict = "pass" if ratio >= target else "FAIL"
        elif absolute is not None and isinstance(ours, Stat):
            op, limit = absolute
            ok = ours.median < limit if op == "<" else ours.median <= limit
            verdict = "pass" if ok else "FAIL"
        if self.mode == "check" and verdict in ("pass", "FAIL"):
            verdict = "(timing not judged)"
        if target is not None:
            tgt = f">= {target:.2f}x".replace(".00x", "x")
        elif absolute is not None:
            tgt = f"{absolute[0]} {absolute[1]:g} {UNITS[unit]}"
        else:
            tgt = "-"
        row = dict(benchmark=name, unit=unit, ours=ours, peer=peer, ratio=ratio, target=tgt,
                   target_ratio=target, absolute=absolute, verdict=verdict, note=note)
        self.rows.append(row)
        log(f"{name}: ours {fmt_stat(ours, unit)}, peer {fmt_stat(peer, unit)}, "
            f"ratio {'-' if ratio is None else f'{ratio:.2f}'}, {verdict}")

    def check(self, name, ok, detail=""):
        """A correctness check: never a timing."""
        if ok:
            log(f"check ok: {name}")
        else:
            log(f"CHECK FAILED: {name}: {detail}")
            self.mismatches.append(f"{name}: {detail}")

    def table(self):
        head = ["benchmark", "ours", "peer", "ratio", "target", "verdict"]
        lines = []
        for r in self.rows:
            lines.append([r["benchmark"], fmt_stat(r["ours"], r["unit"]), fmt_stat(r["peer"], r["unit"]),
                          "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"], r["verdict"]])
        w = [max(len(x[i]) for x in lines + [head]) for i in range(len(head))]
        sep = "-+-".join("-" * n for n in w)
        out = [" | ".join(h.ljust(w[i]) for i, h in enumerate(head)), sep]
        for x in lines:
            out.append(" | ".join(v.ljust(w[i]) for i, v in enumerate(x)))
        return "\n".join(out)

    def markdown(self):
        """The table as Markdown, for doc/performance.md."""
        out = ["| benchmark | ours | peer | ratio | target | verdict |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            cells = [r["benchmark"], fmt_stat(r["ours"], r["unit"]), fmt_stat(r["peer"], r["unit"]),
                     "-" if r["ratio"] is None else f"{r['ratio']:.2f}x", r["target"], r["verdict"]]
            out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        return "\n".join(out) + "\n"

    def write(self, outdir, machine):
        os.makedirs(outdir, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(outdir, f"{self.mode}-{stamp}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["mode", "benchmark", "unit", "ours_median", "ours_min", "ours_max", "peer_median",
                        "peer_min", "peer_max", "ratio", "target", "verdict", "note", "machine"])
            for r in self.rows:
                o, p = r["ours"], r["peer"]
                w.writerow([self.mode, r["benchmark"], r["unit"],
                            *(f"{v:.6g}" for v in ((o.median, o.min, o.max) if isinstance(o, Stat) else ())),
                            *(("", "", "") if not isinstance(o, Stat) else ()),
                            *(f"{v:.6g}" for v in ((p.median, p.min, p.max) if isinstance(p, Stat) else ())),
                            *(("", "", "") if not isinstance(p, Stat) else ()),
                            "" if r["ratio"] is None else f"{r['ratio']:.4g}", r["target"], r["verdict"],
                            r["note"], machine])
        shutil.copyfile(path, os.path.join(outdir, f"latest-{self.mode}.csv"))
        with open(os.path.join(outdir, f"latest-{self.mode}.md"), "w") as f:
            f.write(self.markdown())
        return path

    def chart(self, outdir, machine):
        """A PNG of every judged ratio against its target (log scale)."""
        if not shutil.which("gnuplot"):
            return None
        data = os.path.join(outdir, f"chart-{self.mode}.dat")
        png = os.path.join(outdir, f"latest-{self.mode}.png")
        n = 0
        with open(data, "w") as f:
            for r in self.rows:
                o = r["ours"]
                if r["ratio"] is not None and r["target_ratio"] is not None:
                    got, need = r["ratio"], r["target_ratio"]
                elif r["absolute"] is not None and isinstance(o, Stat) and o.median > 0:
                    got, need = r["absolute"][1] / o.median, 1.0   # headroom under the limit
                else:
                    continue
                got = min(max(got, 0.001), 1000) if got > 0 else 1000   # no growth at all: best
                label = r["benchmark"].split(" (")[0].replace('"', "'")
                f.write(f'"{label}" {got:.6g} {need:.6g}\n')
                n += 1
        if n == 0:
            return None
        gp = f"""
set terminal pngcairo size 1400,{260 + 34 * n} font "DejaVu Sans,11"
set output "{png}"
set title "segment benchmarks ({self.mode}) — {machine}\\nbar: our speed relative to the peer (for an absolute target: limit / measured); dot: target. Higher is better." noenhanced
set style fill solid 0.85 border -1
set logscale x 10
set xrange [0.001:1000]
set format x "%gx"
set grid xtics
set key top right
set yrange [{n - 0.4}:-0.6]
set ytics nomirror noenhanced scale 0
set xlabel "ratio (log scale)"
set lmargin 52
plot "{data}" using (sqrt(0.001 * $2)):0:(0.001):2:($0 - 0.3):($0 + 0.3):($2 >= $3 ? 0x2e8b57 : 0xd62728):ytic(1) \\
       with boxxyerror lc rgb variable title "measured (green: meets target, red: misses)", \\
     "{data}" using 3:0 with points pt 7 ps 1.6 lc rgb "black" title "target"
"""
        gpf = os.path.join(outdir, f"chart-{self.mode}.gp")
        with open(gpf, "w") as f:
            f.write(gp)
        p = subprocess.run(["gnuplot", gpf], capture_output=True, text=True)
        if p.returncode != 0:
            log(f"gnuplot failed: {p.stderr.strip()}")
            return None
        return png


# ---------------------------------------------------------------- the data set

def machine_description():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // (1024 * 1024)
    pg = value("SHOW server_version").split()[0]
    pages = os.environ.get("BENCH_PAGES", "shared memory in 4 kB pages")
    return f"{os.cpu_count()} x {cpu}, {mem} GB RAM, Linux {platform.release()}, PostgreSQL {pg}, {pages}"


def generate(cfg):
    t0 = time.time()
    psql(open(os.path.join(HERE, "setup.sql")).read())
    psql(f"\\set contacts {cfg['contacts']}\n\\set events {cfg['events']}\n\\set seed {SEED}\n"
         + "\\o /dev/null\n" + open(os.path.join(HERE, "data.sql")).read())
    log(f"data: {cfg['contacts']} contacts, {cfg['events']} events loaded in {time.time() - t0:.0f} s")
    psql("VACUUM (ANALYZE, FREEZE) segment.contacts, segment.events, segment.event_stats, segment.contact_tags;")
    log(f"data: ready after {time.time() - t0:.0f} s")
    # Every benchmark but the sending ones runs at the data set's reference time,
    # so results are the same on every run and checks never race the clock.
    ref = value("SELECT ref FROM bench.params")
    set_clock(ref)
    return ref


# ---------------------------------------------------------------- a. members / matches

# (name, class, rule, hand-written SQL returning the contact ids).  class:
#   attr   — profile fields and tags: target time <= 1.2x hand SQL (ratio >= 0.83)
#   window — raw-event windows: target time <= 1.2x hand SQL
#   agg    — all-time aggregates: target >= 10x faster than hand SQL over raw events
RULES = [
    ("country", "attr", "country in ('DE','AT')",
     "SELECT id FROM segment.contacts WHERE attrs->>'country' IN ('DE','AT')"),
    ("age and plan", "attr", "age between 25 and 34 and plan = 'pro'",
     "SELECT id FROM segment.contacts WHERE (attrs->>'age')::numeric BETWEEN 25 AND 34 AND attrs->>'plan' = 'pro'"),
    ("new subscribers", "attr", "created_at > 365 days ago and status = 'subscribed'",
     "SELECT id FROM segment.contacts WHERE created_at > segment.now() - interval '365 days' AND status = 'subscribed'"),
    ("tags and plan", "attr", "tagged 'vip' or (tagged 'beta' and plan in ('pro','enterprise'))",
     "SELECT contact_id FROM segment.contact_tags WHERE tag = 'vip' AND (expires_at IS NULL OR expires_at > segment.now()) "
     "UNION SELECT t.contact_id FROM segment.contact_tags t JOIN segment.contacts c ON c.id = t.contact_id "
     "WHERE t.tag = 'beta' AND (t.expires_at IS NULL OR t.expires_at > segment.now()) "
     "AND c.attrs->>'plan' IN ('pro','enterprise')"),
    ("opened in 30 days", "window", "did email_open within 30 days",
     "SELECT DISTINCT contact_id FROM segment.events WHERE type = 'email_open' "
     "AND occurred_at >= segment.now() - interval '30 days'"),
    ("3+ orders in 60 days", "window", "count(purchase) within 60 days > 3",
     "SELECT contact_id FROM segment.events WHERE type = 'purchase' AND occurred_at >= segment.now() - interval '60 days' "
     "GROUP BY contact_id HAVING count(*) > 3"),
    ("cart abandoned", "window", "did cart_add within 1 day and not did purchase within 1 day",
     "SELECT contact_id FROM segment.events WHERE type = 'cart_add' AND occurred_at >= segment.now() - interval '1 day' "
     "EXCEPT SELECT contact_id FROM segment.events WHERE type = 'purchase' "
     "AND occurred_at >= segment.now() - interval '1 day'"),
    ("golf buyers, 1 year", "window", "did purchase where (category = 'golf') within 365 days",
     "SELECT DISTINCT contact_id FROM segment.events WHERE type = 'purchase' "
     "AND occurred_at >= segment.now() - interval '365 days' AND properties->>'category' = 'golf'"),
    ("free clickers, no order", "window", "did email_click within 14 days and not did purchase and plan = 'free'",
     "SELECT c.id FROM segment.contacts c WHERE c.attrs->>'plan' = 'free' "
     "AND EXISTS (SELECT 1 FROM segment.events e WHERE e.contact_id = c.id AND e.type = 'email_click' "
     "AND e.occurred_at >= segment.now() - interval '14 days') "
     "AND NOT EXISTS (SELECT 1 FROM segment.events e WHERE e.contact_id = c.id AND e.type = 'purchase')"),
    ("lifetime spend > 500", "agg", "sum(purchase.amount) > 500",
     "SELECT contact_id FROM segment.events WHERE type = 'purchase' GROUP BY contact_id HAVING sum(amount) > 500"),
    ("lapsed buyers", "agg", "did purchase and not did purchase within 180 days",
     "SELECT contact_id FROM segment.events WHERE type = 'purchase' GROUP BY contact_id "
     "HAVING max(occurred_at) < segment.now() - interval '180 days'"),
    ("lapsed high value DE/AT", "agg",
     "sum(purchase.amount) > 500 and country in ('DE','AT') and not did purchase within 180 days",
     "SELECT e.contact_id FROM segment.events e JOIN segment.contacts c ON c.id = e.contact_id "
     "WHERE e.type = 'purchase' AND c.attrs->>'country' IN ('DE','AT') GROUP BY e.contact_id "
     "HAVING sum(e.amount) > 500 AND max(e.occurred_at) < segment.now() - interval '180 days'"),
]
MATCHES_RULES = ["country", "lifetime spend > 500", "lapsed high value DE/AT", "tags and plan"]


def bench_members(cfg, res):
    built = have("members")
    if built:
        # Every rule must parse before it is timed; a parse error is a finding, not a crash.
        for name, _, rule, _ in RULES:
            try:
                value(f"SELECT {lit(rule)}::segment.rule")
            except RuntimeError as e:
                res.check(f"rule parses: {name}", False, str(e).splitlines()[0])
    for name, cls, rule, hand in RULES:
        target = 10.0 if cls == "agg" else 1 / 1.2
        peer_q = f"SELECT count(*) FROM ({hand}) s"
        ours_q = f"SELECT count(*) FROM segment.members({lit(rule)}::segment.rule)"
        label = f"members: {name}"
        if not built:
            r = timed_statements([peer_q], cfg["reps"])[0]
            res.add(label, "ms", "not built yet", Stat(ms for ms, _ in r), target, note=rule)
            continue
        try:
            ours, peer = timed_statements([ours_q, peer_q], cfg["reps"])
        except RuntimeError as e:
            res.check(f"members runs: {name}", False, str(e).splitlines()[0])
            r = timed_statements([peer_q], cfg["reps"])[0]
            res.add(label, "ms", "error", Stat(ms for ms, _ in r), target, note=rule)
            continue
        res.add(label, "ms", Stat(ms for ms, _ in ours), Stat(ms for ms, _ in peer), target, note=rule)
        counts = {n for _, n in ours} | {n for _, n in peer}
        res.check(f"members count equals hand SQL: {name}", len(counts) == 1, f"counts {sorted(counts)}")
        if res.mode != "full":
            ours_set = f"SELECT * FROM segment.members({lit(rule)}::segment.rule)"
            hand_set = f"SELECT * FROM ({hand}) h"
            diff = value(f"SELECT count(*) FROM (({ours_set} EXCEPT {hand_set}) UNION ALL "
                         f"({hand_set} EXCEPT {ours_set})) d")
            res.check(f"members set equals hand SQL: {name}", diff == "0", f"{diff} contacts differ")


def bench_matches(cfg, res):
    n = cfg["matches_loop"]
    for name, _, rule, _ in RULES:
        if name not in MATCHES_RULES:
            continue
        label = f"matches per contact: {name}"
        if not have("matches"):
            res.add(label, "us", "not built yet", None, absolute=("<", 100), note=rule)
            continue
        q = (f"SELECT count(*) FILTER (WHERE segment.matches(id, {lit(rule)}::segment.rule)) "
             f"FROM generate_series(1, {n}) id")
        r = timed_statements([q], cfg["reps"])[0]
        res.add(label, "us", Stat(ms * 1000 / n for ms, _ in r), None, absolute=("<", 100),
                note=f"{rule}; mean over {n} contacts in one statement, median over runs")
        if have("members"):
            diff = value(f"SELECT count(*) FROM generate_series(1, {n}) id WHERE segment.matches(id, "
                         f"{lit(rule)}::segment.rule) IS DISTINCT FROM (id IN (SELECT * FROM segment.members("
                         f"{lit(rule)}::segment.rule)))")
            res.check(f"matches agrees with members on {n} contacts: {name}", diff == "0",
                      f"{diff} contacts disagree")


# ---------------------------------------------------------------- b. track

TRACK_ARGS = (":cid::bigint, (CASE WHEN :t <= 52 THEN 'product_view' WHEN :t <= 76 THEN 'email_open' "
              "WHEN :t <= 86 THEN 'cart_add' WHEN :t <= 94 THEN 'email_click' ELSE 'purchase' END), "
              "'{\"product_id\": 17, \"category\": \"golf\"}'::jsonb, (CASE WHEN :t > 94 THEN 49.90 END)")


def pgbench(script, cfg, tmp):
    """One pgbench run of the script on CLIENTS connections that stay open for
    the whole run, as an application's connection pool keeps them: cfg
    warm_secs untimed, then pgb_runs timed windows of pgb_secs each.  Returns
    (warm-up rates, timed rates, CPU µs per transaction): the rates in
    transactions per second, one per window, from pgbench's progress report
    (-P); the CPU is the whole machine's over the timed windows.

    Why one run and not a fresh pgbench per window: a new backend pays a page
    fault for every 4 kB of shared memory it touches for the first time, and
    tracked events touch shared buffers all over the pool.  A run of a few
    seconds on new connections measures mostly those faults (on the full data
    set, tracking without segments climbs from 3,400 to 9,500 tx/s over its
    first 50 s on the same connections); see doc/performance.md, "track
    throughput"."""
    path = os.path.join(tmp, "pgbench.sql")
    with open(path, "w") as f:
        f.write(script)
    warm, secs, runs = cfg["warm_secs"], cfg["pgb_secs"], cfg["pgb_runs"]
    total = warm + secs * runs
    # One second more than the windows, so the last one is reported before the
    # run ends (pgbench prints no progress line for a window the run ends in).
    args = [os.path.join(PGBIN, "pgbench"), "-n", "-h", "127.0.0.1", "-p", os.environ["PGPORT"],
            "-U", "postgres", "-c", str(CLIENTS), "-j", str(THREADS), "-T", str(total + 1), "-P", str(secs),
            "-f", path, "segmentdb"]
    before = server_counters()
    vac_before = autovacuums()
    t0 = time.time()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The machine's CPU over the timed windows (pgbench, the server and all else):
    # read when the untimed start ends and when pgbench does.
    time.sleep(max(0.0, warm - (time.time() - t0)))
    cpu0 = machine_cpu()
    out, err = proc.communicate()
    cpu1 = machine_cpu()
    vacuumed = [t for t, n in autovacuums().items() if n > vac_before.get(t, 0)]
    running = value("SELECT string_agg(relid::regclass::text || ' (vacuum)', ', ') FROM pg_stat_progress_vacuum")
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"pgbench failed: {out[-800:]} {err[-800:]}")
    after = server_counters()
    tx = re.search(r"number of transactions actually processed: ([0-9]+)", out)
    tx = max(int(tx.group(1)), 1) if tx else 1
    d = [a - b for a, b in zip(after, before)]
    # "progress: 20.0 s, 2345.9 tps, ..." for each window of secs seconds.
    windows = [(float(t), float(r)) for t, r in
               re.findall(r"progress: ([0-9.]+) s, ([0-9.]+) tps", err)]
    warm_rates = [r for t, r in windows if t <= warm + 0.5]
    rates = [r for t, r in windows if warm + 0.5 < t <= total + 0.5]
    if not rates:
        # A run too short for a window of its own (--check): its overall rate.
        rates = [float(m.group(1))]
    cores = (cpu1[1] - cpu0[1]) / max(cpu1[0] - cpu0[0], 1e-3)
    cpu_per_tx = cores * 1e6 / (sum(rates) / len(rates))
    log(f"pgbench {total} s: warm-up {' '.join(f'{r:.0f}' for r in warm_rates) or '-'} tps, "
        f"timed {' '.join(f'{r:.0f}' for r in rates)} tps; per transaction {d[0] / tx:.1f} WAL records, "
        f"{d[1] / tx:.2f} full-page images, {d[2] / tx / 1024:.1f} kB WAL, {d[3] / tx:.2f} buffer reads, "
        f"{d[4] / tx:.2f} buffers written by backends; checkpoints started during the run: {d[5]}; "
        f"autovacuum finished during it: {', '.join(vacuumed) or 'none'}; still running: {running or 'none'}; "
        f"during the timed windows {cores:.2f} of {os.cpu_count()} CPUs busy, {cpu_per_tx:.0f} µs of CPU per transaction")
    return warm_rates, rates, cpu_per_tx


def machine_cpu():
    """(seconds since boot, CPU-seconds the whole machine has spent busy) from
    /proc/stat: user, nice, system, irq, softirq and steal; idle and iowait not."""
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return up, (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def server_counters():
    """WAL records, full-page images, WAL bytes, blocks read, buffers written by
    backends, checkpoints: what a timed run costs the server beyond its CPU."""
    row = value("SELECT w.wal_records, w.wal_fpi, w.wal_bytes, "
                "(SELECT sum(blks_read) FROM pg_stat_database), b.buffers_backend, "
                "b.checkpoints_timed + b.checkpoints_req FROM pg_stat_wal w, pg_stat_bgwriter b")
    return [float(x) for x in row.split("|")]


def autovacuums():
    """Autovacuum and autoanalyze runs finished so far, by table of the
    extension's schema: {"events (vacuum)": n, "event_stats (analyze)": n, ...}."""
    rows = value("SELECT string_agg(relname || ':' || autovacuum_count || ':' || autoanalyze_count, ' ') "
                 "FROM pg_stat_user_tables WHERE schemaname = 'segment'")
    runs = {}
    for t, v, a in (x.split(":") for x in rows.split()):
        runs[f"{t} (vacuum)"] = int(v)
        runs[f"{t} (analyze)"] = int(a)
    return runs


def pgbench_scripts(cfg):
    head = f"\\set cid random(1, {cfg['contacts']})\n\\set t random(1, 100)\n"
    track = head + f"SELECT segment.track({TRACK_ARGS});\n"
    plain = head + ("INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at) "
                    f"VALUES ({TRACK_ARGS}, segment.now()) RETURNING id;\n")
    return track, plain


def plain_insert_run(cfg, tmp, script):
    """The peer: a plain INSERT of the same row into the same events table (same
    indexes, same foreign key) with the extension's triggers disabled; the rows
    are deleted again afterwards, and vacuumed away, so the data set is unchanged
    and no autovacuum of the events table, set off by the peer's rows, runs
    during the next timed run."""
    top = value("SELECT max(id) FROM segment.events")
    psql("ALTER TABLE segment.events DISABLE TRIGGER USER;")
    try:
        return pgbench(script, cfg, tmp)
    finally:
        psql(f"DELETE FROM segment.events WHERE id > {top}; ALTER TABLE segment.events ENABLE TRIGGER USER;")
        psql("VACUUM segment.events;")


def bench_track_plain(cfg, res, tmp):
    track, plain = pgbench_scripts(cfg)
    label = "track, no segments vs plain INSERT"
    note = (f"pgbench -c {CLIENTS} -j {THREADS}, one run per side on connections kept open: "
            f"{cfg['warm_secs']} s untimed, then {cfg['pgb_runs']} windows of {cfg['pgb_secs']} s")
    _, peer, _ = plain_insert_run(cfg, tmp, plain)
    if not have("track"):
        res.add(label, "tps", "not built yet", Stat(peer), 0.7, note=note)
        return None, None
    _, ours, cpu = pgbench(track, cfg, tmp)
    res.add(label, "tps", Stat(ours), Stat(peer), 0.7, note=note)
    if res.mode != "full":
        check_event_stats(res, f"after concurrent track ({CLIENTS} clients)")
    return Stat(ours), cpu


def segment_definitions():
    """50 dynamic segments and 10 tag rules over fields, tags and events."""
    segs = []
    for c in ["US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "SE"]:
        segs.append((f"country_{c.lower()}", f"country = '{c}'"))
    for p in ["free", "basic", "pro", "enterprise"]:
        segs.append((f"plan_{p}", f"plan = '{p}'"))
    for lo, hi in [(18, 24), (25, 34), (35, 44), (45, 54), (55, 77)]:
        segs.append((f"age_{lo}_{hi}", f"age between {lo} and {hi}"))
    for d in [7, 30, 90, 180, 365]:
        segs.append((f"bought_{d}d", f"did purchase within {d} days"))
    for d in [7, 30, 90]:
        segs.append((f"opened_{d}d", f"did email_open within {d} days"))
        segs.append((f"clicked_{d}d", f"did email_click within {d} days"))
    for x in [100, 250, 500, 1000, 2000]:
        segs.append((f"ltv_{x}", f"sum(purchase.amount) > {x}"))
    for n in [1, 3, 5, 10]:
        segs.append((f"orders_{n}", f"count(purchase) > {n}"))
    segs += [
        ("cart_abandoners", "did cart_add within 1 day and not did purchase within 1 day"),
        ("lapsed", "did purchase and not did purchase within 180 days"),
        ("lapsed_vip_dach", "sum(purchase.amount) > 500 and country in ('DE','AT','CH') "
                            "and not did purchase within 180 days"),
        ("golf_fans", "did purchase where (category = 'golf') within 365 days"),
        ("browsers_no_buy", "did product_view within 7 days and not did purchase"),
        ("engaged_free", "did email_click within 30 days and plan = 'free'"),
        ("vip_tagged", "tagged 'vip'"),
        ("new_subscribers", "created_at > 30 days ago and status = 'subscribed'"),
        ("frequent_30d", "count(purchase) within 30 days > 2"),
        ("big_basket", "max(purchase.amount) > 300"),
        ("viewers_30d", "did product_view within 30 days"),
    ]
    assert len(segs) == 50, len(segs)
    tags = [("high_spender", "sum(purchase.amount) > 1000"),
            ("recent_buyer", "did purchase within 30 days"),
            ("window_shopper", "count(product_view) within 30 days > 10 and not did purchase within 30 days"),
            ("email_fan", "count(email_open) within 90 days > 5"),
            ("clicker", "did email_click within 7 days"),
            ("one_timer", "count(purchase) = 1"),
            ("premium_plan", "plan in ('pro','enterprise')"),
            ("young_adult", "age < 25"),
            ("dach", "country in ('DE','AT','CH')"),
            ("cart_recent", "did cart_add within 3 days")]
    return segs, tags


def define_segments(res):
    segs, tags = segment_definitions()
    t0 = time.time()
    sql = "".join(f"SELECT segment.create_segment({lit(n)}, {lit(r)}::segment.rule, 'dynamic');\n" for n, r in segs)
    sql += "".join(f"SELECT segment.create_tag_rule({lit(n)}, {lit(r)}::segment.rule);\n" for n, r in tags)
    sql += "SELECT segment.install_default_stages();\n"
    psql("\\o /dev/null\n" + sql)
    secs = time.time() - t0
    log(f"segments: 50 segments, 10 tag rules and the default stages defined in {secs:.0f} s")
    res.add("define 50 segments+10 tag rules+stages", "s", Stat([secs]), None,
            note="create_segment/create_tag_rule/install_default_stages over the data set, one run; no target")
    # Settle the tables the definitions just filled (hundreds of thousands of
    # membership, tag, stage and change-feed rows), as generate() does after the
    # data load: otherwise autovacuum works through them during the timed track
    # runs that follow, on the same cores, and the "none" side never pays that.
    # The same for the events and aggregates the "none" run just added (1.5M
    # rows at full scale), as plain_insert_run does for the peer's before that
    # run: else their count toward autovacuum's insert threshold sets off a
    # vacuum of the whole events table in this side's timed windows.
    psql("VACUUM (ANALYZE, FREEZE) segment.segment_members, segment.changes, segment.contact_tags, "
         "segment.contact_stages;")
    psql("VACUUM (ANALYZE) segment.events, segment.event_stats;")
    return segs


def check_segments(res, segs, when):
    """Dynamic membership must equal members(rule) for every segment."""
    if not have("members"):
        return
    bad = []
    for name, rule in segs:
        # The bench's sessions run at a frozen segment.now() (set_clock), so no
        # window edge passes between a write and this check: membership must be
        # exact without any refresh.
        diff = value(f"SELECT count(*) FROM ((SELECT contact_id FROM segment.segment_members m "
                     f"JOIN segment.segments s ON s.id = m.segment_id WHERE s.name = {lit(name)} "
                     f"EXCEPT SELECT * FROM segment.members({lit(rule)}::segment.rule)) UNION ALL "
                     f"(SELECT * FROM segment.members({lit(rule)}::segment.rule) EXCEPT "
                     f"SELECT contact_id FROM segment.segment_members m JOIN segment.segments s "
                     f"ON s.id = m.segment_id WHERE s.name = {lit(name)})) d")
        if diff != "0":
            bad.append(f"{name} ({diff})")
    res.check(f"segment membership equals members(rule) {when}", not bad, ", ".join(bad))


def check_event_stats(res, when):
    diff = value("SELECT count(*) FROM ((SELECT type, contact_id, count(*), min(occurred_at), max(occurred_at), "
                 "count(amount), sum(amount) FROM segment.events GROUP BY 1, 2) EXCEPT "
                 "(SELECT type, contact_id, count, first_at, last_at, amount_count, sum_amount "
                 "FROM segment.event_stats)) d")
    res.check(f"event_stats equals the aggregates of events {when}", diff == "0", f"{diff} rows differ")


def bench_track_segments(cfg, res, tmp, none_stat, none_cpu):
    label = "track, 50 segments+10 tag rules+stages vs none"
    built = have("track", "create_segment", "create_tag_rule", "install_default_stages", "members")
    if not built:
        res.add(label, "tps", "not built yet", none_stat or None, 0.5)
        return None
    segs = define_segments(res)
    if res.mode != "full":
        check_segments(res, segs, "after create_segment")
    track, _ = pgbench_scripts(cfg)
    cold, runs, cpu = pgbench(track, cfg, tmp)
    if cold:
        res.add(f"track, 50 segments+10 tag rules+stages, first {cfg['warm_secs']} s after defining them", "tps",
                Stat(cold), none_stat, note=f"the untimed start of the row below, in {cfg['pgb_secs']} s windows: "
                "new connections, and shared buffers that still hold what defining the segments read; no target")
    res.add(label, "tps", Stat(runs), none_stat, 0.5,
            note=f"pgbench -c {CLIENTS} -j {THREADS}, one run on connections kept open: {cfg['warm_secs']} s "
            f"untimed (the row above), then {cfg['pgb_runs']} windows of {cfg['pgb_secs']} s")
    if none_cpu:
        res.add("CPU per track call (whole machine), 50 segments+10 tag rules+stages vs none", "us",
                Stat([cpu]), Stat([none_cpu]),
                note="CPU-seconds the machine spent busy during the timed windows (pgbench, server, kernel) "
                "per transaction, both sides; no target: when both keep every CPU busy it agrees with the "
                "ratio of the row above (see doc/performance.md, \"track throughput\")")
    if res.mode != "full":
        check_segments(res, segs, f"after concurrent track ({CLIENTS} clients)")
        check_event_stats(res, "after concurrent track")
    return segs


# ---------------------------------------------------------------- c. refresh

def bench_refresh(cfg, res, segs, ref):
    """refresh() as a daily pg_cron job would run it: each run one day later
    than the previous one (segment.now() moved by clock_override), so the
    time-relative rules have a day of window edges to catch up on."""
    label = "refresh of 50 segments, daily"
    if not segs or not have("refresh"):
        res.add(label, "s", "not built yet", None, absolute=("<", 60))
        return
    runs = []
    for day in range(1, cfg["refresh_reps"] + 1):
        at = value(f"SELECT ({lit(ref)}::timestamptz + interval '{day} days')::text")
        out = psql(f"SET segment.clock_override = {lit(at)};\n\\timing on\n"
                   "SELECT count(*) FROM segment.refresh();\n")
        runs.append(float(re.search(r"^Time: ([0-9.]+) ms", out, flags=re.M).group(1)) / 1000)
    set_clock(at)
    res.add(label, "s", Stat(runs), None, absolute=("<", 60),
            note=f"{cfg['contacts']} contacts; run k at reference time + k days")
    if res.mode != "full":
        check_segments(res, segs, "after refresh")


# ---------------------------------------------------------------- d. render

def render_setup(cfg):
    """One context per row, built from the data set (not timed)."""
    psql(f"""
CREATE TABLE bench.render_ctx AS
SELECT c.id, jsonb_build_object(
  'first_name', c.first_name, 'last_name', c.last_name, 'email', c.email,
  'country', c.attrs->>'country', 'plan', c.attrs->>'plan', 'age', (c.attrs->>'age')::int,
  'coupon', 'SAVE' || (c.id % 90 + 10), 'orders_count', coalesce(s.count, 0),
  'lifetime_value', to_char(coalesce(s.sum_amount, 0), 'FM999990.00') || ' EUR',
  'vip', coalesce(s.sum_amount, 0) > 500, 'plan_paid', c.attrs->>'plan' IN ('pro', 'enterprise'),
  'unsubscribe_url', 'https://shop.example.com/u/' || md5(c.id::text),
  'recommendations', (SELECT jsonb_agg(jsonb_build_object(
        'name', 'Product ' || p, 'url', 'https://shop.example.com/p/' || p,
        'price', to_char(9.99 + p % 90, 'FM990.00'), 'image', 'https://cdn.example.com/i/' || p || '.jpg'))
      FROM generate_series(c.id % 500, c.id % 500 + 3) p)) AS ctx
FROM segment.contacts c
LEFT JOIN segment.event_stats s ON s.contact_id = c.id AND s.type = 'purchase'
WHERE c.id <= {cfg['render_rows']};
ALTER TABLE bench.render_ctx ADD PRIMARY KEY (id);
VACUUM ANALYZE bench.render_ctx;
""")


def bench_render(cfg, res):
    mus = open(os.path.join(HERE, "templates", "email.mustache")).read()
    jin = open(os.path.join(HERE, "templates", "email.jinja")).read()
    n, nj = cfg["render_rows"], cfg["jinja_rows"]
    render_setup(cfg)
    floor_q = f"SELECT sum(octet_length({lit(mus)} || id)) FROM bench.render_ctx"
    jinja_q = f"SELECT sum(octet_length(bench.jinja({lit(jin)}, ctx))) FROM bench.render_ctx WHERE id <= {nj}"
    ours_q = f"SELECT sum(octet_length(segment.render({lit(mus)}, ctx))) FROM bench.render_ctx"
    scale = n / nj
    note_j = f"Jinja2 timed on {nj} rows and scaled x{scale:g} to {n}"
    if not have("render"):
        floor_r, jinja_r = timed_statements([floor_q, jinja_q], cfg["reps"])
        res.add(f"render 5 KB email x {n} vs Jinja2", "s", "not built yet",
                Stat(ms * scale / 1000 for ms, _ in jinja_r), 10.0, note=note_j)
        res.add(f"render 5 KB email x {n} vs concat floor", "s", "not built yet",
                Stat(ms / 1000 for ms, _ in floor_r), 0.25)
        return
    ours_r, floor_r, jinja_r = timed_statements([ours_q, floor_q, jinja_q], cfg["reps"])
    ours = Stat(ms / 1000 for ms, _ in ours_r)
    res.add(f"render 5 KB email x {n} vs Jinja2", "s", ours, Stat(ms * scale / 1000 for ms, _ in jinja_r), 10.0,
            note=note_j)
    res.add(f"render 5 KB email x {n} vs concat floor", "s", ours, Stat(ms / 1000 for ms, _ in floor_r), 0.25)
    # Same output as Jinja2 on a sample of rows, byte for byte.
    diff = value(f"SELECT count(*) FROM bench.render_ctx WHERE id <= {min(nj, 500)} AND "
                 f"segment.render({lit(mus)}, ctx) IS DISTINCT FROM bench.jinja({lit(jin)}, ctx)")
    res.check("render output equals Jinja2 output", diff == "0", f"{diff} rows differ")
    size = value(f"SELECT avg(octet_length(segment.render({lit(mus)}, ctx)))::int FROM bench.render_ctx "
                 f"WHERE id <= 100")
    res.check("rendered email is about 5 KB", 4500 <= int(size) <= 6500, f"average {size} bytes")


# ---------------------------------------------------------------- e, f. sending

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sending_built():
    return have("enqueue", "worker_status") and value(
        "SELECT to_regclass('segment.messages') IS NOT NULL") == "t"


def wait_port(port, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def stop_process(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def point_worker_at(port, connections):
    """Configure the sending worker through the settings a DBA would use."""
    psql(f"ALTER SYSTEM SET segment.smtp_url = 'smtp://127.0.0.1:{port}';\n"
         f"ALTER SYSTEM SET segment.from_address = 'Bench <bench@example.com>';\n"
         f"ALTER SYSTEM SET segment.connections = {connections};\n"
         "SELECT pg_reload_conf();")


def worker_memory():
    """VmRSS and RssAnon (kB) of the sending worker: RssAnon is its private
    memory, VmRSS also counts the shared buffers it touched."""
    pid = value("SELECT pid FROM segment.worker_status()")
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                mem[k] = int(v.split()[0])
    return int(pid), mem


DRAIN_TEXT = "\n".join("x" * 75 for _ in range(4096 // 76))   # 4 KB of 76-byte lines


def start_sink():
    """postfix's smtp-sink on a free port of 127.0.0.1: (process, port)."""
    port = free_port()
    cmd = ["/usr/sbin/smtp-sink"] + (["-u", "postfix"] if os.geteuid() == 0 else []) + [f"127.0.0.1:{port}", "1000"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port


def wait_drained(deadline):
    """Return as soon as no message is queued, sending or waiting for a retry.
    Polled every 10 ms from one session (a new psql and backend per poll would
    take CPU from the worker being measured).  Each look is its own transaction
    and reads the queue's two partial indexes (due rows, leased rows): a single
    transaction would hold one snapshot for the whole drain, keeping every row
    version the drain leaves behind from being pruned (the worker's claim then
    walks them all), and a sequential scan reads every message sent so far, every
    10 ms: at 100,000 messages each look took 0.1-1 s, a CPU taken from the
    worker that grew with the drain."""
    psql(f"""SET enable_seqscan = off;
SET enable_bitmapscan = off;
DO $$BEGIN
  WHILE EXISTS (SELECT FROM segment.messages WHERE status IN ('queued', 'retry'))
     OR EXISTS (SELECT FROM segment.messages WHERE status = 'sending') LOOP
    IF extract(epoch FROM clock_timestamp()) > {deadline} THEN
      RAISE 'the worker did not drain the queue in 15 minutes';
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.01);
  END LOOP;
END$$;""")


def bench_drain(cfg, res):
    n = cfg["messages"]
    conns = int(value("SHOW segment.connections"))
    label = f"worker drain {n} x 4 KB vs smtp-source"
    if not sending_built():
        res.add(label, "msg/s", "not built yet", None, 0.5)
        res.add("worker memory growth", "MB", "not built yet", None, absolute=("<=", 1))
        return
    sink, port = start_sink()
    try:
        wait_port(port)
        point_worker_at(port, conns)
        ours, peer, mem = [], [], []
        text = DRAIN_TEXT
        psql("DELETE FROM segment.messages;")
        mem.append(worker_memory()[1])   # idle, before the first drain
        for i in range(cfg["drain_runs"]):
            # Enqueue in one transaction; the worker is woken when it commits.  The
            # clock starts just before COMMIT.
            out = psql(f"""BEGIN;
SELECT count(segment.enqueue(id, 'Bench message ' || id, NULL, {lit(text)},
       '{{"kind": "marketing", "unsubscribe_url": "https://example.com/u"}}'))
  FROM (SELECT id FROM segment.contacts WHERE status = 'subscribed' ORDER BY id LIMIT {n}) c;
SELECT extract(epoch FROM clock_timestamp());
COMMIT;""")
            queued, t0 = out.split()
            t0 = float(t0)
            res.check(f"{n} messages queued (run {i + 1})", int(queued) == n, f"{queued} queued")
            wait_drained(t0 + 900)
            ours.append(n / (time.time() - t0))
            mem.append(worker_memory()[1])
            sent = int(value("SELECT count(*) FROM segment.messages WHERE status = 'sent'"))
            res.check(f"worker delivered every queued message (run {i + 1})", sent == n, f"{sent} of {n} sent")
            psql("DELETE FROM segment.messages; VACUUM segment.messages;")
            t0 = time.time()
            subprocess.run(["/usr/sbin/smtp-source", "-d", "-s", str(conns), "-m", str(n), "-l", "4096",
                            f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
            peer.append(n / (time.time() - t0))
        res.add(label, "msg/s", Stat(ours), Stat(peer), 0.5,
                note=f"{conns} connections; smtp-source -d -s {conns} -m {n} -l 4096")
        # Flat memory: private memory after the last drain vs after the first, the
        # warm-up (it also pays one-time set-up: libcurl, TLS, caches, plans).  A
        # leak grows with every drain; set-up does not.
        warm = len(mem) > 2
        base = mem[1] if warm else mem[0]
        measured = len(mem) - 2 if warm else 1
        growth = (mem[-1]["RssAnon"] - base["RssAnon"]) / 1024
        rss = f"VmRSS {mem[0]['VmRSS'] / 1024:.1f} -> {mem[-1]['VmRSS'] / 1024:.1f} MB"
        res.add(f"worker memory growth over {measured} x {n} msgs ({rss})", "MB", Stat([growth]), None,
                absolute=("<=", 1), note=("RssAnon growth from the end of the first (warm-up) drain to the end "
                                          "of the last" if warm else "RssAnon growth over the only drain, "
                                          "one-time set-up included") + "; RssAnon kB idle and after each "
                "drain: " + ", ".join(str(m["RssAnon"]) for m in mem))
        log("worker VmRSS / RssAnon (kB), idle and after each drain: "
            + " -> ".join(f"{m['VmRSS']}/{m['RssAnon']}" for m in mem))
    finally:
        psql("ALTER SYSTEM RESET segment.smtp_url; SELECT pg_reload_conf();", check=False)
        stop_process(sink)


def bench_worker_million(cfg, res):
    """Worker memory over a million messages: 5,000 queued once, drained (the
    warm-up), then put back in the queue and drained again 200 times; RssAnon
    is read after the warm-up and after every 100,000.  Requeueing the same
    rows keeps the run to a few minutes (no million 4 KB rows to enqueue)."""
    total, n = cfg["million"], 5_000
    label = f"worker memory growth over {total} msgs"
    if not sending_built():
        res.add(label, "MB", "not built yet", None, absolute=("<=", 1))
        return
    conns = int(value("SHOW segment.connections"))
    sink, port = start_sink()
    try:
        wait_port(port)
        point_worker_at(port, conns)
        text = DRAIN_TEXT
        psql(f"""DELETE FROM segment.messages;
SELECT count(segment.enqueue(id, 'Bench message ' || id, NULL, {lit(text)},
       '{{"kind": "marketing", "unsubscribe_url": "https://example.com/u"}}'))
  FROM (SELECT id FROM segment.contacts WHERE status = 'subscribed' ORDER BY id LIMIT {n}) c;""")
        wait_drained(time.time() + 900)
        mem = [worker_memory()[1]["RssAnon"]]
        t0 = time.time()
        for r in range(total // n):
            psql("UPDATE segment.messages SET status = 'queued', attempts = 0, next_attempt_at = segment.now(),"
                 " sent_at = NULL, last_code = NULL, last_response = NULL; SELECT segment.wake_worker();"
                 + ("VACUUM segment.messages;" if r % 10 == 9 else ""))
            wait_drained(time.time() + 900)
            if (r + 1) * n % 100_000 == 0:
                mem.append(worker_memory()[1]["RssAnon"])
        rate = total / (time.time() - t0)
        sent = int(value("SELECT count(*) FROM segment.messages WHERE status = 'sent'"))
        res.check(f"worker delivered every requeued message ({total // n} x {n})", sent == n, f"{sent} of {n} sent")
        growth = (mem[-1] - mem[0]) / 1024
        res.add(label, "MB", Stat([growth]), None, absolute=("<=", 1),
                note=f"RssAnon after a {n}-message warm-up, then every 100,000 (kB): "
                + ", ".join(str(m) for m in mem) + f"; {rate:.0f} msg/s")
        log(f"worker RssAnon (kB) after the warm-up and every 100,000 messages: {mem}; {rate:.0f} msg/s")
    finally:
        psql("ALTER SYSTEM RESET segment.smtp_url; SELECT pg_reload_conf();", check=False)
        stop_process(sink)


LATENCY_SQL = """
CREATE TABLE bench.latency (message_id text PRIMARY KEY, committed_at float8 NOT NULL);
-- One transactional message at a time: enqueue, note the time, commit,
-- wait until the worker reports it sent (so the next one finds it idle).
CREATE PROCEDURE bench.latency_sends(n int) LANGUAGE plpgsql AS $$
<<latency_sends>>
DECLARE
  id bigint; st text; t float8; ids bigint[] := '{}'; ts float8[] := '{}';
  who bigint[] := ARRAY(SELECT c.id FROM segment.contacts c WHERE c.status = 'subscribed' ORDER BY c.id LIMIT n);
BEGIN
  FOR i IN 1..n LOOP
    id := segment.enqueue(who[i], 'Your order ' || i, NULL, 'Thank you for your order.', '{"kind": "transactional"}');
    -- The clock is read just before COMMIT (after it, this backend may be
    -- scheduled out while the woken worker already sends): the latency measured
    -- includes the commit, never less than the real one.
    t := extract(epoch FROM clock_timestamp());
    COMMIT;
    ids := ids || id; ts := ts || t;
    FOR k IN 1..5000 LOOP
      SELECT m.status INTO st FROM segment.messages m WHERE m.id = latency_sends.id;
      EXIT WHEN st IN ('sent', 'failed');
      PERFORM pg_sleep(0.002);
    END LOOP;
    PERFORM pg_sleep(0.02);
  END LOOP;
  INSERT INTO bench.latency SELECT m.message_id, u.t
    FROM unnest(ids, ts) AS u (id, t) JOIN segment.messages m ON m.id = u.id;
END $$;
"""


def bench_latency(cfg, res, tmp):
    n = cfg["sends"]
    label = f"enqueue -> SMTP accepted p50, {n} sends"
    if not sending_built():
        res.add(label, "ms", "not built yet", None, absolute=("<", 50))
        return
    port = free_port()
    capfile = os.path.join(tmp, "accepted.txt")
    cap = subprocess.Popen([sys.executable, os.path.join(HERE, "smtp_capture.py"), str(port), capfile])
    try:
        wait_port(port)
        point_worker_at(port, int(value("SHOW segment.connections")))
        time.sleep(0.5)
        psql("DELETE FROM segment.messages;" + LATENCY_SQL + f"CALL bench.latency_sends({n});")
        time.sleep(0.5)
        accepted = {}
        with open(capfile) as f:
            for line in f:
                t, mid = line.split()
                accepted[mid] = float(t)
        lat = []
        for line in psql("SELECT message_id, committed_at FROM bench.latency").splitlines():
            mid, t = line.split("|")
            if mid in accepted:
                lat.append((accepted[mid] - float(t)) * 1000)
        res.check(f"every transactional message accepted ({n})", len(lat) == n, f"{len(lat)} of {n}")
        if lat:
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            res.add(label, "ms", Stat(lat), None, absolute=("<", 50),
                    note=f"p99 {p99:.1f} ms, max {lat[-1]:.1f} ms")
            res.add(f"enqueue -> SMTP accepted p99, {n} sends", "ms", Stat([p99]), None)
    finally:
        psql("ALTER SYSTEM RESET segment.smtp_url; SELECT pg_reload_conf();", check=False)
        stop_process(cap)


# ---------------------------------------------------------------- main

def results_from_csv(path):
    """Rebuild a Results from a CSV this script wrote (to redraw its chart)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    res = Results(rows[0]["mode"])
    for r in rows:
        st = lambda k: Stat([float(r[k + "_median"]), float(r[k + "_min"]), float(r[k + "_max"])]) \
            if r[k + "_median"] else None
        ours = st("ours") or r["verdict"]
        t = r["target"]
        target = float(t[3:-1]) if t.startswith(">= ") else None
        absolute = (t.split()[0], float(t.split()[1])) if t[:1] in "<" else None
        res.add(r["benchmark"], r["unit"], ours, st("peer"), target, absolute, r["note"])
    return res, rows[0]["machine"]


def main():
    global PGBIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(MODES), default="full")
    ap.add_argument("--only", help="comma-separated: members,matches,track,refresh,render,drain,latency,"
                    "million (1M messages through the worker: full scale by default, else only when named)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--chart", metavar="CSV", help="only redraw the chart of a results CSV")
    args = ap.parse_args()
    if args.chart:
        res, machine = results_from_csv(args.chart)
        print(res.chart(os.path.dirname(os.path.abspath(args.chart)), machine))
        return 0
    PGBIN = os.environ.get("PGBIN") or PGBIN
    cfg = MODES[args.mode]
    only = set(args.only.split(",")) if args.only else None
    want = lambda k: only is None or k in only
    res = Results(args.mode)
    t_start = time.time()
    machine = machine_description()
    load_start = f"{os.getloadavg()[0]:.1f}"
    log(f"mode {args.mode}: {machine}")
    ref = generate(cfg)
    tmp = tempfile.mkdtemp(prefix="segment-bench-")
    os.chmod(tmp, 0o755)
    try:
        if want("members"):
            bench_members(cfg, res)
        if want("matches"):
            bench_matches(cfg, res)
        segs = None
        if want("track"):
            none_stat, none_cpu = bench_track_plain(cfg, res, tmp)
            segs = bench_track_segments(cfg, res, tmp, none_stat, none_cpu)
        if want("refresh"):
            if segs is None and have("create_segment", "create_tag_rule", "install_default_stages", "refresh"):
                segs = define_segments(res)
            bench_refresh(cfg, res, segs, ref)
        if want("render"):
            bench_render(cfg, res)
        set_clock(None)   # the worker runs on the real clock
        if want("drain"):
            bench_drain(cfg, res)
        if want("latency"):
            bench_latency(cfg, res, tmp)
        if cfg["million"] and ((only is None and args.mode == "full") or (only and "million" in only)):
            bench_worker_million(cfg, res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"segment benchmarks — mode {args.mode} — {machine}")
    print(f"{cfg['contacts']} contacts, {cfg['events']} events, seed {SEED}; "
          f"ours and peer: median (min-max) of the runs; ratio = our speed / peer speed (higher is better)")
    print()
    print(res.table())
    print()
    csv_path = res.write(args.results, machine)
    png = res.chart(args.results, machine)
    print(f"results: {csv_path}" + (f", chart: {png}" if png else ""))
    print(f"total time: {time.time() - t_start:.0f} s; load average at start {load_start}, at end "
          f"{os.getloadavg()[0]:.1f} (other work on the machine widens the min-max)")
    if res.mismatches:
        print(f"\n{len(res.mismatches)} correctness check(s) FAILED:")
        for m in res.mismatches:
            print(f"  {m}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
