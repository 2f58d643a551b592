# Table 2, Qwen3-0.6B mid-trained with L_train + noisy embedding (NEFTune; alpha 5, the official Qwen3 baseline's default).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_0_6b_noisy.py
# Hardware: about 5 A100 GPU-hours. Everything else: config/midtrain_qwen3_0_6b.py
from config.midtrain_qwen3_0_6b import *
out_dir = 'out/midtrain_qwen3_0_6b_noisy'
noisy_embedding_alpha = 5.0
