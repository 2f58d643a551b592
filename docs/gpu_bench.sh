#!/usr/bin/env bash
# One GPU, about 5 minutes, torch.compile included: the numbers of the README's performance section.
#  1. docs/gpu_loss_check.py: the fused losses (losses.py's default on CUDA) equal the eager ones, and the
#     loss alone, forward + backward, fused vs eager.
#  2. bench.py, GPT-2 small (12 x 768, vocab 50257, 124M) at T=1024, B=16 (the official per-device batch), bf16
#     autocast: no regularizer vs dispersion on every layer (our model compiled, the loss fused, as train.py runs
#     them) vs Hugging Face GPT2LMHeadModel + the official dispersion loss (eager, as the official scripts run
#     it); all tokens, then 256 sampled tokens per sequence and layer (the paper's setting).
#  3. train.py end to end (bf16, compile, MFU in its log) with GPT-2 small's body on the pydocs bytes, and a
#     resume from its mid-run snapshot that must retrace the same losses.
# Each part runs only while the time budget lasts (BUDGET seconds, default 600).
#
#     OUT=results bash docs/gpu_bench.sh        # writes $OUT/*.log, $OUT/bench_gpu*.json, $OUT/train_gpu*/
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to an output directory}"
mkdir -p "$OUT"
BUDGET=${BUDGET:-600}
start=$SECONDS
left() { echo $((BUDGET - (SECONDS - start))); }
within() {  # within SECONDS NAME COMMAND...: run COMMAND, capped at SECONDS and the budget left, into NAME.log
    local cap=$1 name=$2 t
    shift 2
    t=$(left); [ "$t" -gt "$cap" ] && t=$cap
    if [ "$t" -lt 30 ]; then echo "skipped $name: $(left)s of the budget left"; return 1; fi
    timeout "$t" "$@" 2>&1 | tee "$OUT/$name.log" || { echo "$name failed or ran past ${t}s"; return 1; }
}

date -u
nvidia-smi -L
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
python -c "import sys, torch, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| cuda', torch.version.cuda, '| transformers', transformers.__version__)"
git rev-parse --short HEAD 2>/dev/null || echo "git: unknown"

within 120 loss_check python docs/gpu_loss_check.py || true

SHAPE="--n_layer=12 --n_head=12 --n_embd=768 --vocab_size=50257 --block_size=1024 --batch_size=16"
RUN="--regs=dispersion --dtype=bfloat16 --steps=10 --warmup=2 --repeats=3"
# if compiling fails or runs past its time, an eager run still gives overhead and memory
within 150 bench_gpu python bench.py $SHAPE $RUN --compile=True --json="$OUT/bench_gpu.json" \
    || within 60 bench_gpu_eager python bench.py $SHAPE $RUN --compile=False --json="$OUT/bench_gpu_eager.json" \
    || true
within 120 bench_gpu_sub256 python bench.py $SHAPE $RUN --compile=True --reg_max_tokens=256 \
    --json="$OUT/bench_gpu_sub256.json" || true

# train.py end to end: 300 steps with dispersion on every block, a snapshot at 150; then a second run resumes
# from that snapshot and must retrace steps 160..300 (bf16 + compile: equal to rounding, not bit for bit)
TRAIN="config/demo.py --device=cuda --dtype=bfloat16 --compile=True --n_layer=12 --n_head=12 --n_embd=768
  --block_size=1024 --batch_size=16 --max_iters=300 --warmup_iters=30 --learning_rate=6e-4 --min_lr=6e-5
  --eval_interval=100 --eval_iters=20 --log_interval=10 --snapshot_interval=150 --condensation_samples=100"
A="$OUT/train_gpu" B="$OUT/train_gpu_resumed"
within 150 train_gpu python train.py $TRAIN --out_dir="$A" || true
if [ -f "$A/ckpt_000150.pt" ]; then
    mkdir -p "$B" && cp "$A/ckpt_000150.pt" "$B/ckpt.pt"
    within 90 train_gpu_resumed python train.py $TRAIN --out_dir="$B" --init_from=resume || true
fi
if [ -f "$B/metrics.jsonl" ]; then
    python - "$A/metrics.jsonl" "$B/metrics.jsonl" <<'PY' || true
import json, sys
runs = [{r['step']: r['train_loss'] for r in map(json.loads, open(p)) if 'train_loss' in r} for p in sys.argv[1:]]
common = sorted(s for s in runs[1] if s > 150 and s in runs[0])
diff = max(abs(runs[0][s] - runs[1][s]) for s in common)
print(f"resume check: steps {common[0]}..{common[-1]}, max |train loss difference| = {diff:.2e}")
PY
fi
echo "done in $((SECONDS - start))s"
