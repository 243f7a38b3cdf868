#!/usr/bin/env bash
# GPU check for issue 7 (seed-batched engine), one call of a few minutes on a lent GPU:
#   1. environment: nvidia-smi, torch / CUDA versions, the device torch sees;
#   2. the engine's equivalence tests on CPU (fast; they are the correctness gate);
#   3. benchmarks/sweep_speed.py on CUDA: the quick run, then Cora (gcn_res, depth 2..64) and
#      Coauthor CS (gcn, depth 2..32), 10 seeds, 200 epochs each, PyG loop vs batched engine
#      (adjacency=auto: dense for Cora), then the batched engine on Cora with sparse CSR;
#   4. a table of wall times, speedups, floors and accuracy verdicts.
# Needs the dataset mirror (PyG raw layout with Planetoid/Cora and Coauthor/CS):
# GDEPTH_DATA_MIRROR, else ./shared/datasets, else ../shared/datasets.
# Usage: bash benchmarks/gpu_check.sh [--budget SECONDS]  (default 480: stops the benchmark
# runs in time to print the table). Results: $OUT (or ./gpu_check_out) /*.json, *.txt.
set -u
BUDGET=480
[ "${1:-}" = "--budget" ] && BUDGET="$2"
OUTDIR="${OUT:-./gpu_check_out}"
mkdir -p "$OUTDIR"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

if [ -z "${GDEPTH_DATA_MIRROR:-}" ]; then
  for d in ./shared/datasets ../shared/datasets; do
    [ -d "$d/Planetoid/Cora/raw" ] && export GDEPTH_DATA_MIRROR="$(cd "$d" && pwd)" && break
  done
fi
export GDEPTH_DATA="${GDEPTH_DATA:-$OUTDIR/data-cache}" GDEPTH_OFFLINE=1

echo "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
"$PY" - <<'EOF'
import torch, torch_geometric
print("torch", torch.__version__, "cuda", torch.version.cuda, "pyg", torch_geometric.__version__)
print("cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
echo "mirror: ${GDEPTH_DATA_MIRROR:-NOT FOUND (the benchmark will fail to load the datasets)}"

echo "== equivalence tests (CPU)"
OMP_NUM_THREADS=1 timeout 120 "$PY" -m pytest tests/test_engine.py -q -p no:warnings 2>&1 | tail -3

run() {  # name, then sweep_speed.py arguments
  local name=$1; shift
  local t; t=$(left)
  if [ "$t" -lt 30 ]; then echo "== $name: skipped, budget spent"; return; fi
  echo "== $name (at most ${t}s)"
  timeout "$t" "$PY" benchmarks/sweep_speed.py --device cuda --json "$OUTDIR/$name.json" "$@" \
    2>&1 | grep -v Warning | tee "$OUTDIR/$name.txt"
}
run quick --quick
run cora --workload cora
run coauthor_cs --workload coauthor_cs
# adjacency=auto is dense on CUDA for Cora: the batched engine again with CSR, to check that rule
run cora_sparse --workload cora --engines batched --adjacency sparse

echo "== table"
"$PY" - "$OUTDIR" <<'EOF'
import json, sys
from pathlib import Path
print(f"{'workload':12} {'pyg s':>8} {'batched s':>10} {'speedup':>8} {'floor s':>8}  accuracy")
for name in ("quick", "cora", "coauthor_cs", "cora_sparse"):
    path = Path(sys.argv[1]) / f"{name}.json"
    if not path.exists():
        print(f"{name:12} (not run or not finished)")
        continue
    for r in json.loads(path.read_text()):
        w = r["wall_s"]
        print(f"{r['workload']:12} {w.get('pyg', float('nan')):8.1f} "
              f"{w.get('batched', float('nan')):10.1f} {r['ratio']:7.2f}x {r['floor_s']:8.2f}  "
              f"{r['verdict']}")
EOF
