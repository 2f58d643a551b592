# Table 2, GPT2-m mid-trained with L_train + noisy embedding (NEFTune, alpha = 1 for GPT-2 and 5 for Qwen3 as the official baselines).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2m_noisy.py
# Hardware: about 3 A100 GPU-hours. Shared settings: config/midtrain_gpt2m.py
from config.midtrain_gpt2m import *
out_dir = 'out/midtrain_gpt2m_noisy'
noisy_embedding_alpha = 1.0
