#!/usr/bin/env bash
# GPU check, one call of a few minutes on a lent GPU:
#   1. environment: nvidia-smi, torch / CUDA versions, the device torch sees;
#   2. the CUDA tests (tests/test_gpu.py, marker gpu): adjacency=auto's dense rule, the
#      free-memory estimate, CUDA out of memory recorded as oom;
#   3. benchmarks/sweep_speed.py on CUDA: the Cora workload (gcn_res, depth
#      2..64, 10 seeds, 200 epochs), four columns (PyG example dense, PyG sparse features,
#      gdepth loop, gdepth batched with adjacency=auto: dense for Cora) and gdepth sweep
#      end to end; then the batched engine alone with a sparse CSR adjacency;
#   4. the tables (benchmarks/render.py) and the batched column against the target: the Cora
#      workload in at most 10 s of training on an H100.
# Needs the dataset mirror (PyG raw layout with Planetoid/Cora):
# GDEPTH_DATA_MIRROR, else ./shared/datasets, else ../shared/datasets.
# Usage: bash benchmarks/gpu_check.sh [--budget SECONDS]  (default 480: stops the benchmark
# runs in time to print the tables; a run cut short keeps the depths it finished). Results: $OUT (or ./gpu_check_out) /*.json, *.txt.
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
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
"$PY" - <<'EOF'
import torch, torch_geometric
print("torch", torch.__version__, "cuda", torch.version.cuda, "pyg", torch_geometric.__version__)
print("cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
echo "mirror: ${GDEPTH_DATA_MIRROR:-NOT FOUND (the benchmark will fail to load the datasets)}"

echo "== CUDA tests (tests/test_gpu.py)"
timeout 240 "$PY" -m pytest -n 0 tests/test_gpu.py -m gpu -q -p no:cacheprovider 2>&1 \
  | tee "$OUTDIR/test_gpu.txt" | tail -15

run() {  # name, then sweep_speed.py arguments
  local name=$1; shift
  local t; t=$(left)
  if [ "$t" -lt 30 ]; then echo "== $name: skipped, budget spent"; return; fi
  echo "== $name (at most ${t}s)"
  timeout "$t" "$PY" benchmarks/sweep_speed.py --device cuda --json "$OUTDIR/$name.json" "$@" \
    2>&1 | grep -v Warning | tee "$OUTDIR/$name.txt"
}
run cora --workload cora
# adjacency=auto is dense on CUDA for Cora: the batched engine again with CSR, to check that rule
run cora_sparse --workload cora --engines batched --adjacency sparse --no-cli

echo "== tables"
for f in "$OUTDIR"/cora.json "$OUTDIR"/cora_sparse.json; do
  [ -f "$f" ] && "$PY" benchmarks/render.py "$f" | tee "${f%.json}.md"
done
"$PY" - "$OUTDIR" <<'EOF'
import json, sys
from pathlib import Path
print(f"{'run':12} {'pyg s':>8} {'pyg_sparse s':>12} {'loop s':>8} {'batched s':>10} "
      f"{'gdepth sweep s':>14}  target (Cora, batched <= 10 s)")
for name in ("cora", "cora_sparse"):
    path = Path(sys.argv[1]) / f"{name}.json"
    if not path.exists():
        print(f"{name:12} (not run or not finished)")
        continue
    for r in json.loads(path.read_text())["results"]:
        w, nan = r["wall_s"], float("nan")
        target = "met" if w["batched"] <= 10 else "NOT met"
        if not r.get("complete", True):
            target += f" (incomplete: stopped after depth {r['rows'][-1]['depth']})"
        print(f"{name:12} {w.get('pyg', nan):8.1f} {w.get('pyg_sparse', nan):12.1f} "
              f"{w.get('loop', nan):8.1f} {w['batched']:10.1f} "
              f"{r.get('cli', {}).get('wall_s', nan):14.1f}  {target}")
EOF
