#!/usr/bin/env bash
# Every GPU check of the open issues in one short run, for a lent GPU machine whose python3
# already has torch and triton (results under $OUT, or ./gpu-out when OUT is unset):
#   bash benchmarks/gpu_session.sh                      # every step
#   STEPS="segment_reduce knn_sweep" bash benchmarks/gpu_session.sh
# Each step has its own time limit and writes its JSON as it finishes, so a step that fails or
# runs long leaves the others' results. Logs go to session.log; the Markdown tables are made
# from the JSON files afterwards (each script's markdown()). Nothing is installed.
set -u
OUT=${OUT:-gpu-out}
STEPS=${STEPS:-tests segment_reduce ops knn tiles knn_sweep}
mkdir -p "$OUT"
LOG=$OUT/session.log
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export POOLWISE_NO_EXT=1  # CPU references use the PyTorch paths: no C++ build on the GPU machine
PY=${PY:-python3}
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return ;; esac
  local t0=$SECONDS
  echo "==== $name" >>"$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? in $((SECONDS - t0)) s" | tee -a "$LOG" >>"$OUT/steps.txt"
}
{ nvidia-smi -L; $PY -c "import torch, triton; print(torch.__version__, triton.__version__)"; } >>"$LOG" 2>&1
step tests 150 $PY -m pytest -q -p no:cacheprovider tests/pooling/test_cuda.py tests/pooling/test_triton.py
step segment_reduce 150 $PY benchmarks/segment_reduce.py --shapes "64,512,768;256,1024,1024" \
  --json "$OUT/segment-reduce.json"
step ops 120 $PY benchmarks/ops.py --device cuda --quick --json "$OUT/ops-cuda.json"
step knn 200 $PY benchmarks/knn_gpu.py --budget "${KNN_BUDGET:-90}" --json "$OUT/knn-gpu.json"
# the paper's model at three SNRs, four poolers, one seed, 50k sets: a resumable sweep whose
# store and report come back as one archive (kept even when the time limit cuts the sweep)
step tiles 200 $PY benchmarks/triton_tiles.py --json "$OUT/triton-tiles.json"
step knn_sweep "${KNN_SWEEP_S:-330}" $PY -m poolwise reproduce adapool-knn --preset paper-gpu --k 4,16,64 \
  --poolers adapool,max,mean,cls_token --set num_samples=50000 --set "epochs=${KNN_EPOCHS:-15}" \
  --workers 4 --out knn-paper-gpu --quiet
[ -d knn-paper-gpu ] && tar czf "$OUT/knn-paper-gpu.tgz" knn-paper-gpu
grep -E "passed|failed|error" "$LOG" | tail -n 5
cat "$OUT/steps.txt"
