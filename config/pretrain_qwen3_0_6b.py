# Table 5, Qwen3-0.6B pre-trained from scratch with L_train only; shared settings of both Table 5 runs.
# The paper ran this with TorchTitan and does not state the token budget or schedule; these are ours: the
# Qwen3-0.6B shape (28 blocks, 1024 wide, 16 heads / 8 kv heads of 128, SwiGLU 3072, tied embeddings), 4096-token
# windows, 262,144 tokens per step, 5B tokens, lr 3e-4 cosine to 3e-5 after a 2% warmup.
# train.py prepares the data on first use (one process; the others wait), running
#   python data/fineweb_edu/prepare.py --tokenizer=Qwen/Qwen3-0.6B --out_dir=data/fineweb_edu_qwen3
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_qwen3_0_6b.py
# Hardware: 8 x H100 for about a day.
init_from = 'scratch'
arch = 'qwen3'
out_dir = 'out/pretrain_qwen3_0_6b'
dataset = 'fineweb_edu_qwen3'
n_layer, n_head, n_kv_head, head_dim, n_embd, mlp_hidden = 28, 16, 8, 128, 1024, 3072
rope_theta = 1e6
block_size = 4096
batch_size = 4
gradient_accumulation_steps = 16
max_tokens = 5_000_000_000
learning_rate = 3e-4
min_lr = 3e-5
warmup_frac = 0.02
weight_decay = 0.1
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
seed = 1
eval_interval = 1000
snapshot_interval = 2000         # condensation over training (measure.py --ckpt=... --snapshots=True)
eval_tasks = 'paper'
reg = 'none'
