# Table 2, GPT2 mid-trained with L_train + l2-repel.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_l2.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_l2'
reg = 'l2_repel'
reg_coeff = 0.1
reg_tau = 1.0
reg_max_tokens = 256
