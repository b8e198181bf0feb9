#!/usr/bin/env bash
# One GPU lease, start to finish, inside the 10 minutes one device call may run (session 7; the
# session-3 lease, eight short training runs side by side, is in git history and MODEL_CARD.md):
#   1. two runs of the U-Net's local stage from the shipped weights, side by side on the one GPU for
#      the same time budget: the session-3 recipe (batch 32 of 128 px) and a larger one (batch 64 of
#      192 px); the CUDA tests run beside them (correctness, not timings);
#   2. then, on a quiet GPU, the benchmark's `gpu` part (whole restores fp32/bf16, batching, the host
#      readings, several processes per GPU) and its `pipeline` part on CUDA (the Beam job in-process
#      and with 4 worker processes, against the model alone).
# Usage: benchmarks/gpu_lease.sh DATA OUT MINUTES
# DATA: the training photos, carried along. Beam is not installed on the lent machine: a stripped
# site folder built here (.gpu/site312.tar.xz: apache-beam 2.77 and the dependencies the machine
# lacks, for Python 3.12) is unpacked first. OUT gets few files: weights and logs per run, and meta.
set -u
DATA=$1 OUT=$2 MIN=$3 RUNS=/tmp/runs META=/tmp/meta
W=model/weights/imagemend-base.safetensors
mkdir -p "$RUNS" "$META" "$OUT" /tmp/site
tar -xJf .gpu/site312.tar.xz -C /tmp/site
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:/tmp/site  # the project is not installed there
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$META/gpu.txt" 2>&1
python3 -c "import torch, apache_beam, pyarrow, numpy; print(torch.__version__, torch.cuda.get_device_name(),
  'beam', apache_beam.__version__, 'pyarrow', pyarrow.__version__, 'numpy', numpy.__version__)" >>"$META/gpu.txt" 2>&1
cat "$META/gpu.txt"
common="--data $DATA --stage local --init $W --weighting fixed --loss-weights deblur=3 --lr 5e-4 --threads 6
  --steps 1000000 --val-every 1000 --ckpt-every 2000 --minutes $MIN"
OMP_NUM_THREADS=6 timeout $((60 * ${MIN%.*} + 90)) python3 -m imagemend.model.training.train $common --batch 32 --patch 128 \
  --out $RUNS/b32p128 >$RUNS/b32p128.log 2>&1 &
A=$!
OMP_NUM_THREADS=6 timeout $((60 * ${MIN%.*} + 90)) python3 -m imagemend.model.training.train $common --batch 64 --patch 192 \
  --out $RUNS/b64p192 >$RUNS/b64p192.log 2>&1 &
B=$!
(for i in $(seq 30); do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; sleep 10; done
) >"$META/gpu-load.txt" 2>&1 &
OMP_NUM_THREADS=2 timeout 200 python3 -m pytest -q -p no:cacheprovider tests/model/test_cuda.py >"$META/cuda-tests.txt" 2>&1
tail -5 "$META/cuda-tests.txt"
wait $A $B
for r in b32p128 b64p192; do  # packed at once: what is under OUT comes back even if a later step runs over
  tail -c 400 $RUNS/$r.log; echo
  w=$(cd $RUNS/$r && ls final.safetensors 2>/dev/null || ls latest.safetensors)
  tar -C $RUNS -cf "$OUT/$r.tar" "$r/$w" "$r/train_log.jsonl" "$r.log"
done
(cd benchmarks && timeout 200 python3 bench_model.py --parts gpu --sizes 1,12 --device cuda --repeats 2 \
  --threads 2 --out "$META/gpu.json") >"$META/bench-gpu.log" 2>&1
grep -v "^{" "$META/bench-gpu.log" | tail -40
tar -C "$META" -czf "$OUT/meta-gpu.tar.gz" .
(cd benchmarks && timeout 150 python3 bench_model.py --parts pipeline --device cuda --threads 16 --repeats 1 \
  --pipeline-sizes 1 --pipeline-images 48 --pipeline-workers 1,4 --decode-threads 4 \
  --out "$META/pipeline-gpu.json") >"$META/bench-pipeline.log" 2>&1
grep -v "^{" "$META/bench-pipeline.log" | tail -30
tar -C "$META" -czf "$OUT/meta.tar.gz" . ; ls -la "$OUT"
