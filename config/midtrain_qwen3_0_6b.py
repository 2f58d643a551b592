# Table 2, Qwen3-0.6B mid-trained with L_train only; the base of every Qwen3-0.6B mid-training config
# (each method file imports this one and changes only its method).
# The official recipe (github.com/KrishnaswamyLab/LM-Dispersion, lm_dispersion/midtrain_qwen3_huggingface/midtrain_qwen3.py):
# WikiText-103, 4096-token windows, batch 1 x 32, 131,072 tokens per step, a 200M-token budget,
# AdamW lr 5e-5, betas (0.9, 0.95), wd 0.1, cosine to 0 after a 20% warmup, clip 1.0, bf16, seed 1; lm-eval on
# the paper's ten tasks at step 0, every 306 steps and at the end. The official script multiplies lr by
# sqrt(world size) because its global batch grows with the GPU count; ours is fixed (a function of seed and
# step), so lr is the one-GPU value.
# train.py prepares the data on first use (one process; the others wait), running
#   python data/wikitext/prepare.py --tokenizer=Qwen/Qwen3-0.6B --out_dir=data/wikitext_qwen3
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_0_6b.py
# Hardware: about 5 A100 GPU-hours (the paper's Table 2); 8 GPUs train the same steps faster.
# 80 GB per GPU holds batch 1 x 4096 without activation checkpointing.
init_from = 'Qwen/Qwen3-0.6B'
out_dir = 'out/midtrain_qwen3_0_6b'
dataset = 'wikitext_qwen3'
block_size = 4096
batch_size = 1                   # per micro-step per process
gradient_accumulation_steps = 32 # 1 * 32 * 4096 = 131,072 tokens per step, split over the processes
max_tokens = 200_000_000         # 1,526 steps, as the GPT-2 runs
learning_rate = 5e-5
min_lr = 0.0
warmup_frac = 0.2                # warmup = ceil(0.2 * max_steps) = 306 steps
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
grad_accum_reduction = 'sum'     # the official HF Trainer's: 32x the mean gradient (docs/grad_scale.md)
dropout = 0.0                    # Qwen3's attention_dropout is 0 and it has no other dropout
seed = 1
eval_interval = 306              # the official max_steps // 5 + 1
eval_iters = 20
log_interval = 10
eval_tasks = 'paper'             # the ten tasks, Qwen3 family settings (5-shot, limit 200)
lm_eval_interval = 306           # and every max_steps // 5 + 1 steps during training, as the official callback
lm_eval_at_start = True          # and the starting model at step 0 (the official --eval_at_begin): the base row
reg = 'none'
reg_clamp = 0.25                 # the official Qwen3 script has no clamp flag: the loss class default, 0.25
