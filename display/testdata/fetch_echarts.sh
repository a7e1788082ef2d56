#!/bin/sh
# Fetch echarts.min.js (Apache-2.0) from the npm registry into
# display/testdata/echarts.min.js (ignored by git) for the browser tests,
# which otherwise look at $CONVLENS_ECHARTS_JS. Needs npm.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${ECHARTS_VERSION:-5.5.1}
if [ -s "$here/echarts.min.js" ]; then
	echo "$here/echarts.min.js"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "echarts@$version" >/dev/null && tar xzf "echarts-$version.tgz")
cp "$tmp/package/dist/echarts.min.js" "$here/echarts.min.js.tmp"
mv "$here/echarts.min.js.tmp" "$here/echarts.min.js"
echo "$here/echarts.min.js"
