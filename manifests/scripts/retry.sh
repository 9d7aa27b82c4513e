#!/usr/bin/env bash
# Run a command until it succeeds, at most ATTEMPTS times, DELAY seconds apart; the last failure's
# exit code is returned. Used by `make platform` for objects validated by webhooks that only serve
# some time after their Deployment reports Available (KServe's, Knative's).
#   usage: retry.sh ATTEMPTS DELAY COMMAND [ARGS...]
set -uo pipefail
attempts="${1:?attempts}"
delay="${2:?delay seconds}"
shift 2
[ "$#" -gt 0 ] || { echo "error: retry.sh needs a command" >&2; exit 2; }
case "$attempts$delay" in *[!0-9]*) echo "error: ATTEMPTS and DELAY must be whole numbers" >&2; exit 2;; esac
for ((i = 1; ; i++)); do
  "$@" && exit 0
  rc=$?
  if [ "$i" -ge "$attempts" ]; then
    echo "error: gave up after $attempts attempts: $*" >&2
    exit "$rc"
  fi
  echo "attempt $i/$attempts failed (exit $rc); retrying in ${delay}s: $*" >&2
  sleep "$delay"
done
