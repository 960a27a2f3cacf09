#!/usr/bin/env bash
# cmake --build with the progress lines and make's directory chatter left
# out, so that what follows (make run's URLs) is what the user sees.
# Compiler warnings and errors still show; the exit status is the build's.
#   scripts/quiet_build.sh <cmake --build arguments...>
set -uo pipefail
# Run from make, the build's own make is a sub-make and prints "Entering
# directory" around everything; as a top-level make it does not.
unset MAKELEVEL MAKEFLAGS MFLAGS
cmake --build "$@" 2>&1 | { grep -Ev --line-buffered \
  -e '^\[ *[0-9]+%\] ' \
  -e '^\[[0-9]+/[0-9]+\] ' \
  -e '^g?make(\[[0-9]+\])?: (Entering|Leaving) directory' \
  -e '^Consolidate compiler generated dependencies of target ' \
  -e '^ninja: no work to do' || true; }
exit "${PIPESTATUS[0]}"
