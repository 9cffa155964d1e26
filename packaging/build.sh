#!/bin/sh
# Builds dist/berth_<version>_amd64.deb and dist/berth-<version>.x86_64.rpm
# with nfpm (pinned, fetched through the Go module proxy). BERTH_VERSION
# overrides the version from packaging/version.sh.
set -eu
cd "$(dirname "$0")/.."
VERSION=${BERTH_VERSION:-$(packaging/version.sh)}
export BERTH_VERSION="$VERSION"
mkdir -p dist
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o dist/berth ./cmd/berth
gzip -9n < packaging/berth.1 > dist/berth.1.gz
date=$(date -R -d "@$(git log -1 --format=%ct)")
printf 'berth (%s-1) unstable; urgency=medium\n\n  * Release %s; see /usr/share/doc/berth/README.md.\n\n -- The berth developers <berth@berth.invalid>  %s\n' \
  "$VERSION" "$VERSION" "$date" | gzip -9n > dist/changelog.Debian.gz
nfpm="go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"
$nfpm package -f nfpm.yaml -p deb -t "dist/berth_${VERSION}_amd64.deb"
$nfpm package -f nfpm.yaml -p rpm -t "dist/berth-${VERSION}.x86_64.rpm"
ls -l dist/*.deb dist/*.rpm
