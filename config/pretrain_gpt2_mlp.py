# Figure 3, the controlled size study: GPT-2-like models pre-trained from scratch that differ ONLY in MLP width
# (mlp_hidden = 64, 256, 1024, 4096: 69M, 73M, 87M, 143M parameters with the GPT-2 vocabulary); shared settings.
# The official recipe (github.com/KrishnaswamyLab/LM-Dispersion,
# lm_dispersion/pretrain_toy_gpt2_change_ffn/pretrain_toy_gpt2.py): the gpt2 config (12 x 768, 12 heads, dropout 0.1)
# with only n_inner changed, random init, FineWeb-Edu (codelion/fineweb-edu-1B), 1024-token windows, batch 16 x 8,
# lr 1e-5 (sic), cosine after a 20% warmup, wd 0.1, clip 1.0, bf16. Its token budget is a required argument with no
# value in that code: 1B tokens (one pass over that dataset) is our choice, not the official one.
# train.py prepares the data on first use (one process; the others wait), running
#   python data/fineweb_edu/prepare.py
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_gpt2_mlp1024.py
#   python measure.py config/measure_pretrain_gpt2_mlp.py   # the trend, with the official toy-study recipe
init_from = 'scratch'
out_dir = 'out/pretrain_gpt2_mlp'  # run as is: the standard width 4 * 768 = 3072, for reference
arch = 'gpt'
dataset = 'fineweb_edu'
n_layer, n_head, n_embd = 12, 12, 768
dropout = 0.1
block_size = 1024
batch_size = 16
gradient_accumulation_steps = 8
max_tokens = 1_000_000_000       # our choice (see above): the official script leaves --train_tokens to the user
learning_rate = 1e-5
min_lr = 0.0
warmup_frac = 0.2
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
grad_accum_reduction = 'sum'     # the official HF Trainer's: 8x the mean gradient (docs/grad_scale.md)
seed = 1
eval_interval = 1000
