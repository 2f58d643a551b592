# Table 2, Qwen3-0.6B mid-trained with L_train only; shared settings of the Qwen3 mid-training configs.
# The official Qwen3 runs (REFERENCE.md 4.1): 4096-token windows, batch 1 x 32 (131,072 tokens per step),
# otherwise the GPT-2 recipe; the dispersion clamp is the loss class default 0.25; lm-eval 5-shot, limit 200.
#   python data/wikitext/prepare.py --tokenizer=Qwen/Qwen3-0.6B --out_dir=data/wikitext_qwen3   # once
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_0_6b.py
# Hardware: about 5 A100 GPU-hours; 80 GB per GPU holds batch 1 x 4096 without activation checkpointing.
from config.midtrain_gpt2 import *
init_from = 'Qwen/Qwen3-0.6B'
out_dir = 'out/midtrain_qwen3_0_6b'
dataset = 'wikitext_qwen3'
block_size = 4096
batch_size = 1
gradient_accumulation_steps = 32
reg_clamp = 0.25
dropout = 0.0                    # Qwen3's attention_dropout is 0
