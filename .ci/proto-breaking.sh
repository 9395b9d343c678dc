#!/usr/bin/env bash
# The schema check's compatibility half (`make proto-check`): `buf breaking`
# with buf.yaml's rules (FILE) against the last release and against the
# commit before, then a self-test proving the rules catch what would break
# clients (a deleted RPC, a renamed RPC, a changed go_package) and let an
# added field through. BUF names the buf command (default: buf on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-buf}

# The last release: the newest tag v*, else the committed baseline image,
# the reference point until the first release is tagged.
tag=$(git describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)
if [ -n "$tag" ]; then
  echo "proto-check: against the last release, $tag"
  $BUF breaking --against ".git#tag=$tag"
else
  echo "proto-check: no release tag yet; against the baseline .ci/proto-baseline.json"
  $BUF breaking --against .ci/proto-baseline.json
fi
if git rev-parse -q --verify HEAD~1 >/dev/null; then
  echo "proto-check: against the commit before, $(git rev-parse --short HEAD~1)"
  $BUF breaking --against '.git#ref=HEAD~1'
else
  echo "proto-check: no earlier commit to compare the schema with"
fi

# Self-test: each mutation of a copy of proto/ must fail the check against
# proto/ as it is, and an added field must pass.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$BUF build -o "$work/current.binpb"
mutate() {
  rm -rf "$work/module" && mkdir -p "$work/module" && cp -r proto buf.yaml "$work/module/"
  sed -i "$1" "$work/module/proto/releasemanager/v1/$2"
}
expect() {
  local want=$1 what=$2
  if (cd "$work/module" && $BUF breaking --against "$work/current.binpb" >"$work/out" 2>&1); then
    got=pass
  else
    got=fail
  fi
  if [ "$got" != "$want" ]; then
    echo "proto-check self-test: $what should $want the check but did $got:" >&2
    cat "$work/out" >&2
    exit 1
  fi
  echo "proto-check self-test: $what: the check says $want, as it must"
}
mutate '/rpc DeletePolicies(/d' policy_service.proto
expect fail "deleting the RPC DeletePolicies"
mutate 's/rpc ListServices(/rpc ListAllServices(/' release_service.proto
expect fail "renaming the RPC ListServices"
mutate 's#^option go_package = ".*";#option go_package = "example.com/other;otherv1";#' common.proto
expect fail "changing go_package"
mutate 's/^  string service = 1;$/  string service = 1;\n  \/\/ A new field.\n  string added_for_the_test = 99;/' policy_service.proto
expect pass "adding a field"
