#!/usr/bin/env bash
# Every GPU check of the open issues in one short run, for a lent GPU machine whose python3
# already has torch and triton (results under $OUT, or ./gpu-out when OUT is unset):
#   bash benchmarks/gpu_session.sh
# Each step has its own time limit and writes its JSON as it finishes, so a step that fails or
# runs long leaves the others' results. Logs go to session.log; the Markdown tables are made
# from the JSON files afterwards (each script's markdown()). Nothing is installed.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
LOG=$OUT/session.log
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export POOLWISE_NO_EXT=1  # CPU references use the PyTorch paths: no C++ build on the GPU machine
PY=${PY:-python3}
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "==== $name" >>"$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s" | tee -a "$LOG" >>"$OUT/steps.txt"
}
{ nvidia-smi -L; $PY -c "import torch, triton; print(torch.__version__, triton.__version__)"; } >>"$LOG" 2>&1
step tests 150 $PY -m pytest -q -p no:cacheprovider tests/pooling/test_cuda.py tests/pooling/test_triton.py
step segment_reduce 150 $PY benchmarks/segment_reduce.py --json "$OUT/segment-reduce.json"
step ops 120 $PY benchmarks/ops.py --device cuda --quick --json "$OUT/ops-cuda.json"
step knn 200 $PY benchmarks/knn_gpu.py --budget "${KNN_BUDGET:-90}" --json "$OUT/knn-gpu.json"
grep -E "passed|failed|error" "$LOG" | tail -n 5
cat "$OUT/steps.txt"
