#!/usr/bin/env bash
# The benchmark suite's correctness checks at small scale (bench/run --check): every
# benchmarked query must give the same answer as its peer — members(rule) equals the
# hand-written SQL for every rule, matches() agrees with members(), dynamic segment
# membership equals members(rule) after concurrent tracking and after refresh,
# event_stats equals the aggregates of events, rendered mail equals Jinja2's, every
# queued message is delivered.  Timings are printed but never judged here.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash bench/run --check
