# Table 5, Qwen3-0.6B pre-trained from scratch with L_train + dispersion loss.
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_qwen3_0_6b_disp.py
from config.pretrain_qwen3_0_6b import *
out_dir = 'out/pretrain_qwen3_0_6b_disp'
reg = 'dispersion'
reg_coeff = 0.1
reg_tau = 1.0
reg_max_tokens = 256
reg_clamp = 0.25
