# Beyond Table 2 (which stops at Qwen3-1.7B): Qwen3-8B mid-trained with L_train only, the paper's Qwen3 recipe; the
# base of the Qwen3-8B configs (each method file imports this one and changes only its method).
# The official recipe (github.com/KrishnaswamyLab/LM-Dispersion, lm_dispersion/midtrain_qwen3_huggingface/midtrain_qwen3.py):
# WikiText-103, 4096-token windows, batch 1 x 32, 131,072 tokens per step, a 200M-token budget,
# AdamW lr 5e-5, betas (0.9, 0.95), wd 0.1, cosine to 0 after a 20% warmup, clip 1.0, bf16, gradient checkpointing,
# seed 1; lm-eval on the paper's ten tasks at the end. lr is the one-GPU value: our global batch is fixed.
# train.py prepares the data on first use (one process; the others wait), running
#   python data/wikitext/prepare.py --tokenizer=Qwen/Qwen3-0.6B --out_dir=data/wikitext_qwen3
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_8b.py
#   torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT train.py config/midtrain_qwen3_8b.py
#       (the same line on every node; HOST:PORT one node's address; out_dir on a file system all nodes share)
# Memory per GPU: 8.19B parameters (8B does not tie its embedding to lm_head). Weights, gradients and AdamW's two
# moments are float32, 16 bytes per parameter: 131 GB on every GPU under DDP, more than a GPU holds; FSDP divides
# that by the GPU count (16.4 GB on 8, 8.2 GB on 16). On top, while they run: bfloat16 copies of the block being
# computed and the next (0.8 GB) and of the embedding and lm_head (2.5 GB, and as much for their gradients before
# the reduce-scatter); activations, with checkpointing each block's input (36 x 4096 x 4096 bf16, 1.2 GB) and the
# float32 logits over 151,936 tokens with their gradient (~7 GB). About 30 GB per GPU on 8 GPUs: an estimate
# (metrics.jsonl's mem_gb is the measured peak). Each process reads the full float32 model into host memory before
# sharding it (33 GB; twice that while converting the hub's bfloat16 weights: 0.5 TB for 8 processes).
init_from = 'Qwen/Qwen3-8B'
out_dir = 'out/midtrain_qwen3_8b'
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
# (at the end only: lm-eval during training, the official callback's every 306 steps, needs the whole model in one
# process, which FSDP does not have; tables.py --select=final then reports these runs)
reg = 'none'
reg_clamp = 0.25                 # the official Qwen3 script has no clamp flag: the loss class default, 0.25
parallel = 'fsdp'                # FSDP2: parameters, gradients and AdamW state sharded over the GPUs (parallel.py)
activation_checkpoint = True     # as the official runs (gradient checkpointing): the same losses, less memory
