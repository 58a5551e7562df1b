#!/usr/bin/env bash
# Alternating A/B run of the training benchmark on two commits (A B A B ...), so that a change of the
# machine's load hits both alike. Each commit is checked out in its own git worktree and imported from
# there (PYTHONPATH), with this checkout's virtual environment.
#
#   scripts/bench_ab.sh BASE_REV NEW_REV [ROUNDS] [-- extra scripts/bench.py options]
#
# Default: DRSN-CW at batch 128, eager and compiled, 7 timed rounds of 16 batches per run, 3 runs per
# commit; prints each run's compiled/reference and eager/reference ratios. Results: outputs/bench_ab/.
set -euo pipefail
base=${1:?usage: scripts/bench_ab.sh BASE_REV NEW_REV [ROUNDS] [-- bench options]}
new=${2:?usage: scripts/bench_ab.sh BASE_REV NEW_REV [ROUNDS] [-- bench options]}
rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
here=$(git rev-parse --show-toplevel)
py=${PY:-$here/.venv/bin/python}
out=$here/outputs/bench_ab
work=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$work/base" >/dev/null 2>&1 || true;
      git -C "$here" worktree remove --force "$work/new" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$here" worktree add -f --detach "$work/base" "$base" -q
git -C "$here" worktree add -f --detach "$work/new" "$new" -q
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  for side in base new; do
    root=$work/$side
    echo "== round $round $side ($(git -C "$root" rev-parse --short HEAD)) $(date +%T)"
    (cd "$root" && PYTHONPATH=$root FAULT_DIAG_ROOT=$root "$py" scripts/bench.py --only train \
      --models drsn_cw --batch-sizes 128 --compile-models drsn_cw --members 1 --rounds 7 \
      --steps 16 --threads 1 --out "$out/$side-$round" "$@" > "$out/$side-$round.log" 2>&1)
    "$py" - "$out/$side-$round/bench.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = {r["variant"]: r for r in report["parts"]["train"]["rows"] if "ratio_to_reference" in r}
print("   " + ", ".join(f"{v}/reference {r['ratio_to_reference']:.3f}" for v, r in rows.items()
                        if v != "reference") + f"  (load {report['load']['start'][0]:.1f})")
EOF
  done
done
