# Table 2, GPT2 mid-trained with L_train + noisy embedding (NEFTune, alpha = 1 for GPT-2 and 5 for Qwen3 as the official baselines).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_noisy.py
# Hardware: one A100/H100 GPU-hour. Shared settings: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_noisy'
noisy_embedding_alpha = 1.0
