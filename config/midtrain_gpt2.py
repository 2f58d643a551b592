# Table 2, GPT2 mid-trained with L_train only; the shared settings of every GPT-2 mid-training config.
# The official runs (REFERENCE.md 4.1): WikiText-103, 1024-token windows, 131,072 tokens per step, a 200M-token
# budget (1,526 steps), AdamW lr 5e-5, betas (0.9, 0.95), wd 0.1, cosine to 0 after a 20% warmup, clip 1.0,
# bf16, dropout 0.1 (HF GPT-2 trains with it), seed 1; lm-eval on the paper's ten tasks at the end.
# Hardware: one A100/H100 (~1 GPU-hour) or 8 with torchrun (same global batch, same training).
#   python data/wikitext/prepare.py                # once: data/wikitext/{train,val}.bin with the GPT-2 tokenizer
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2.py
# The official script scales lr by sqrt(world size) because its global batch grows with the GPU count; ours does
# not (the global batch is fixed), so lr is the single-GPU value.
init_from = 'gpt2'
out_dir = 'out/midtrain_gpt2'
dataset = 'wikitext'
block_size = 1024
batch_size = 16                  # per micro-step per process
gradient_accumulation_steps = 8  # 16 * 8 * 1024 = 131,072 tokens per step, split over the processes
max_tokens = 200_000_000
learning_rate = 5e-5
min_lr = 0.0
warmup_frac = 0.2
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
dropout = 0.1
seed = 1
eval_interval = 306              # the official max_steps // 5 + 1
eval_iters = 20
log_interval = 10
eval_tasks = 'paper'             # the ten tasks, GPT-2 family settings (1-shot, limit 500)
reg = 'none'
