#!/usr/bin/env bash
# Install everything the project needs from Debian's packages. Idempotent: when every
# package is already installed it does nothing (and does not touch the network).
set -euo pipefail

PKGS=(
  build-essential
  postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap postgresql-15-cron
  libtap-parser-sourcehandler-pgtap-perl
  libcurl4-openssl-dev
  python3 python3-aiosmtpd
  postfix
  clang libclang-rt-14-dev valgrind
  postgresql-plpython3-15 python3-jinja2
  gnuplot-nox
  procps iproute2 ca-certificates openssl
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# postfix is only used for its smtp-sink/smtp-source tools: no mail system is configured.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a default cluster on port 5432 when postgresql-15 is installed; we never
# use it, and a stopped one is cheaper on a 2-core machine.
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql/15/main ]; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
