# Table 2, GPT2 mid-trained with L_train only; the base of every GPT2 mid-training config
# (each method file imports this one and changes only its method).
# The official recipe (github.com/KrishnaswamyLab/LM-Dispersion, lm_dispersion/midtrain_gpt2_huggingface/midtrain_gpt2.py):
# WikiText-103, 1024-token windows, batch 16 x 8, 131,072 tokens per step, a 200M-token budget,
# AdamW lr 5e-5, betas (0.9, 0.95), wd 0.1, cosine to 0 after a 20% warmup, clip 1.0, bf16, seed 1; lm-eval on
# the paper's ten tasks at step 0, every 306 steps and at the end. The official script multiplies lr by
# sqrt(world size) because its global batch grows with the GPU count; ours is fixed (a function of seed and
# step), so lr is the one-GPU value.
# train.py prepares the data on first use (one process; the others wait), running
#   python data/wikitext/prepare.py
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2.py
# Hardware: one A100/H100 GPU-hour (the paper's Table 2); 8 GPUs train the same steps faster.
init_from = 'gpt2'
out_dir = 'out/midtrain_gpt2'
dataset = 'wikitext'
block_size = 1024
batch_size = 16                  # per micro-step per process
gradient_accumulation_steps = 8  # 16 * 8 * 1024 = 131,072 tokens per step, split over the processes
max_tokens = 200_000_000         # 1,526 steps, the official max_steps = ceil(200M / 131,072)
learning_rate = 5e-5
min_lr = 0.0
warmup_frac = 0.2                # warmup = ceil(0.2 * max_steps) = 306 steps
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
grad_accum_reduction = 'sum'     # the official HF Trainer's: 8x the mean gradient (docs/grad_scale.md)
dropout = 0.1                    # HF GPT-2's resid/embd/attn dropout, active in the official (HF Trainer) runs
seed = 1
eval_interval = 306              # the official max_steps // 5 + 1
snapshot_interval = 306          # keep the weights of every evaluation step, as the official runs (Figure 7's columns;
                                 # ~0.5 GB each for GPT-2, 6 per run with step 0)
eval_iters = 20
log_interval = 10
eval_tasks = 'paper'             # the ten tasks, GPT-2 family settings (1-shot, limit 500)
lm_eval_interval = 306           # and every max_steps // 5 + 1 steps during training, as the official callback
lm_eval_at_start = True          # and the starting model at step 0 (the official --eval_at_begin): the base row
reg = 'none'
