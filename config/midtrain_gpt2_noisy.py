# Table 2, GPT2 mid-trained with L_train + noisy embedding (NEFTune; alpha 1, the official GPT-2 baseline's default).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_noisy.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_noisy'
noisy_embedding_alpha = 1.0
