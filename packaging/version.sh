#!/bin/sh
# Prints berth's version from git describe: v0.1.0 → 0.1.0; five commits
# later → 0.1.0+git5.gabc1234; with no tag → 0.1.0~git<count>.<hash>
# (a ~ sorts before the release, in dpkg and rpm alike).
set -eu
cd "$(dirname "$0")/.."
if d=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
  base=${d%-*-*}; base=${base#v}
  rest=${d#"v$base"-}; n=${rest%%-*}; h=${rest#*-}
  if [ "$n" = 0 ]; then echo "$base"; else echo "$base+git$n.$h"; fi
else
  echo "0.1.0~git$(git rev-list --count HEAD).$(git rev-parse --short HEAD)"
fi
