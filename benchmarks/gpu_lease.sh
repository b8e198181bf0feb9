#!/usr/bin/env bash
# One GPU lease, start to finish (what ran on the lent H200 of session 3, in 6 minutes: the benchmark
# failed there for want of PYTHONPATH, set below since, and was rerun by hand with the same lines):
#   1. eight training runs side by side on the one GPU, each for the same time budget, 2 CPU threads each:
#      the shipped model's two stages continued (local U-Net; global branch), and, from scratch with the
#      same recipe, one multitask model and the five single-task models that docs/QUALITY.md compares;
#   2. the CUDA tests (bf16 and fp32 against the CPU);
#   3. the GPU benchmark (net alone by batch and precision, whole restores, batching), then torch.compile.
# Usage: benchmarks/gpu_lease.sh DATA OUT MINUTES   (DATA: CBSD432, carried along; OUT: results, packed
# as few files: weights and logs of two runs per tar, everything else in meta.tar.gz)
set -u
DATA=$1 OUT=$2 MIN=$3 RUNS_DIR=/tmp/runs META=/tmp/meta
W=model/weights/imagemend-base.safetensors
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 PYTHONPATH=$PWD  # the project is not installed there
mkdir -p "$RUNS_DIR" "$META" "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$META/gpu.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" >>"$META/gpu.txt" 2>&1
common="--data $DATA --batch 32 --patch 128 --threads 2 --val-every 500 --ckpt-every 500 --steps 100000"
declare -A RUNS=(
  [ship-local]="--stage local --init $W --loss-weights deblur=3 --lr 5e-4"
  [ship-global]="--stage global --init $W --init-local $W --lr 5e-4"
  [multitask]="--tasks denoise,deblur,cast,exposure,contrast"
  [single-denoise]="--tasks denoise" [single-deblur]="--tasks deblur" [single-cast]="--tasks cast"
  [single-exposure]="--tasks exposure" [single-contrast]="--tasks contrast"
)
launch() {  # name minutes extra-args
  python3 -m model.train $common --out "$RUNS_DIR/$1" --minutes "$2" ${RUNS[$1]} $3 >"$RUNS_DIR/$1.log" 2>&1 &
  PIDS[$1]=$!
}
declare -A PIDS
for name in "${!RUNS[@]}"; do launch "$name" "$MIN" ""; done
(for i in $(seq 40); do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; sleep 15; done
) >"$META/gpu-load.txt" 2>&1 &
sleep 75  # a run that broke at once (bf16 on this GPU, say) gets one retry in fp32
for name in "${!RUNS[@]}"; do
  if ! kill -0 "${PIDS[$name]}" 2>/dev/null && ! ls "$RUNS_DIR/$name"/final.safetensors >/dev/null 2>&1; then
    echo "retrying $name in fp32"; mv "$RUNS_DIR/$name.log" "$RUNS_DIR/$name.failed.log"
    launch "$name" "$(python3 -c "print($MIN - 1.5)")" "--precision fp32 --restart"
  fi
done
wait "${PIDS[@]}"
grep -h "weights written\|Error\|error" "$RUNS_DIR"/*.log | tail -20
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_model_cuda.py 2>&1 | tail -15 | tee "$META/cuda-tests.txt"
(cd benchmarks && timeout 120 python3 bench_model.py --parts gpu --sizes 1,12 --device cuda --repeats 2 \
  --out "$META/gpu.json") >"$META/bench.log" 2>&1
(cd benchmarks && timeout 60 python3 bench_model.py --parts gpu --sizes 12 --device cuda --repeats 2 --compile \
  --out "$META/gpu-compile.json") >>"$META/bench.log" 2>&1
grep -v "^{" "$META/bench.log" | tail -45
pack() {  # tar name run...
  local files=()
  for r in "${@:2}"; do
    w=$(ls "$RUNS_DIR/$r"/final.safetensors 2>/dev/null || ls "$RUNS_DIR/$r"/latest.safetensors 2>/dev/null)
    files+=(${w#"$RUNS_DIR/"} "$r/train_log.jsonl" "$r.log")
  done
  tar -C "$RUNS_DIR" -cf "$OUT/$1.tar" "${files[@]}"
}
pack ship ship-local ship-global; pack mt-denoise multitask single-denoise
pack deblur-cast single-deblur single-cast; pack exposure-contrast single-exposure single-contrast
cp "$RUNS_DIR"/*.failed.log "$META"/ 2>/dev/null
tar -C "$META" -czf "$OUT/meta.tar.gz" . ; ls -la "$OUT"
