# Table 2, GPT2-m (gpt2-medium) mid-trained with L_train + noisy embedding (NEFTune; alpha 1, the official GPT-2 baseline's default).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2m_noisy.py
# Hardware: about 3 A100 GPU-hours. Everything else: config/midtrain_gpt2m.py
from config.midtrain_gpt2m import *
out_dir = 'out/midtrain_gpt2m_noisy'
noisy_embedding_alpha = 1.0
