#!/usr/bin/env bash
# The CPU-scale reproduction study of docs/study.md: every number and figure there comes from this script.
#   bash docs/study.sh            # ~1 hour on 2 CPU cores; runs go to out/study/, the report to docs/study/
# Toy runs: a 4-block, 128-wide GPT on the embedded pydocs corpus (byte tokens), 300 steps of 2,048 tokens.
# They test the paper's claims at a scale a laptop can check, not the paper's numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # two runs side by side, one core each
JOBS=${JOBS:-2}
O=out/study
COMMON="--dataset=pydocs --n_layer=4 --n_head=4 --n_embd=128 --block_size=128 --batch_size=16 --max_iters=300
        --warmup_iters=30 --learning_rate=2e-3 --min_lr=2e-4 --eval_interval=100 --eval_iters=10 --log_interval=50
        --condensation_samples=50 --device=cpu --compile=False"
python -c "import data; data.dataset_dir('pydocs')"  # prepare the corpus once, before runs start in parallel

runs=()
for seed in 1 2 3; do
  # (a) condensation at initialisation (Feature 3): the same model before any training step
  runs+=("--max_iters=0 --seed=$seed --out_dir=$O/init_s$seed")
  # (c) baseline vs the dispersion loss vs each alternative (Table 2 / Figure 7), lambda = 0.1 as the paper
  runs+=("--reg=none --seed=$seed --snapshot_interval=100 --out_dir=$O/none_s$seed")
  for reg in dispersion decorrelation l2_repel orthogonalization infonce_cos; do
    runs+=("--reg=$reg --reg_coeff=0.1 --seed=$seed --out_dir=$O/${reg}_s$seed")
  done
  runs+=("--reg=dispersion --reg_coeff=1.0 --seed=$seed --out_dir=$O/dispersion_l1_s$seed")
  runs+=("--noisy_embedding_alpha=5 --seed=$seed --out_dir=$O/noisy_s$seed")
  runs+=("--active_forgetting_every=100 --af_emb_lr=2e-3 --seed=$seed --out_dir=$O/forget_s$seed")
done
for seed in 1 2 3; do
  # (b) the MLP-width study (Feature 2 / Figure 3): only mlp_hidden changes (4 * 128 = 512 is the default)
  for width in 32 128 512 2048; do
    runs+=("--mlp_hidden=$width --seed=$seed --out_dir=$O/mlp${width}_s$seed")
  done
done

run_one() {
  out=$(echo "$1" | sed 's/.*--out_dir=\([^ ]*\).*/\1/')
  if [ -f "$out/condensation.json" ]; then echo "skip $out (done)"; return; fi
  echo "train $out"
  python train.py $COMMON $1 > "$out.log" 2>&1 || { echo "FAILED: $out (see $out.log)"; return 1; }
}
export -f run_one; export COMMON
mkdir -p $O
printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

# figures (measure.py) and the tables of docs/study.md
python measure.py --compare=$O/none_s1,$O/dispersion_s1,$O/dispersion_l1_s1 --out_dir=docs/study/fig7
python measure.py --ckpt=$O/mlp32_s1,$O/mlp128_s1,$O/mlp512_s1,$O/mlp2048_s1 --dataset=pydocs --seq_len=128 \
  --num_samples=50 --out_dir=docs/study/fig3
python measure.py --ckpt=$O/none_s1 --snapshots=True --dataset=pydocs --seq_len=128 --num_samples=50 \
  --out_dir=docs/study/fig4
python docs/study_report.py $O > docs/study/results.md
echo "wrote docs/study/results.md and the figures in docs/study/"
