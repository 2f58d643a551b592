# Table 2, Qwen3-0.6B mid-trained with L_train + l2-repel.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_0_6b_l2.py
# Hardware: about 5 A100 GPU-hours. Everything else: config/midtrain_qwen3_0_6b.py
from config.midtrain_qwen3_0_6b import *
out_dir = 'out/midtrain_qwen3_0_6b_l2'
reg = 'l2_repel'
reg_coeff = 0.1
reg_tau = 1.0
reg_max_tokens = 256
