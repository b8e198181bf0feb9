#!/usr/bin/env bash
# Session 7's second GPU lease (about 4 minutes of a short budget): N runs of the U-Net's local stage
# from INIT side by side, one seed each, whose mean is the result (model/tools/merge.py --local with several
# files: a model soup); the CUDA tests beside them; then a profile of whole restores on the GPU.
# Usage: benchmarks/gpu_lease_soup.sh DATA INIT OUT MINUTES N
set -u
DATA=$1 INIT=$2 OUT=$3 MIN=$4 N=$5 RUNS=/tmp/runs
mkdir -p "$RUNS" "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD  # the project is not installed there
for s in $(seq "$N"); do
  OMP_NUM_THREADS=3 timeout $((60 * ${MIN%.*} + 75)) python3 -m imagemend.model.training.train --data "$DATA" --stage local \
    --init "$INIT" --weighting fixed --loss-weights deblur=3 --lr 3e-4 --batch 64 --patch 192 --threads 3 \
    --steps 1000000 --val-every 1000 --ckpt-every 2000 --minutes "$MIN" --seed "$s" --out "$RUNS/s$s" \
    >"$RUNS/s$s.log" 2>&1 &
done
(for i in $(seq 20); do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; sleep 10; done
) >"$RUNS/gpu-load.txt" 2>&1 &
OMP_NUM_THREADS=2 timeout 100 python3 -m pytest -q -p no:cacheprovider tests/model/test_cuda.py >"$OUT/cuda-tests.txt" 2>&1
tail -3 "$OUT/cuda-tests.txt"
wait $(jobs -p | head -n "$N")
for s in $(seq "$N"); do  # a tar per run (files come back at most 16 MB each), packed at once
  tail -c 300 "$RUNS/s$s.log"; echo
  w=$(cd "$RUNS/s$s" && ls final.safetensors 2>/dev/null || ls latest.safetensors)
  tar -C "$RUNS" -cf "$OUT/s$s.tar" "s$s/$w" "s$s/train_log.jsonl" "s$s.log"
done
cp "$RUNS/gpu-load.txt" "$OUT/"
(cd benchmarks && timeout 60 python3 profile_restore.py --device cuda --megapixels 1 12) >"$OUT/profile.txt" 2>&1
ls -la "$OUT"
