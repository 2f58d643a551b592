# Table 2, Qwen3-1.7B mid-trained with L_train + noisy embedding (NEFTune; alpha 5, the official Qwen3 baseline's default).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_1_7b_noisy.py
# Hardware: about 10 A100 GPU-hours. Everything else: config/midtrain_qwen3_1_7b.py
from config.midtrain_qwen3_1_7b import *
out_dir = 'out/midtrain_qwen3_1_7b_noisy'
noisy_embedding_alpha = 5.0
