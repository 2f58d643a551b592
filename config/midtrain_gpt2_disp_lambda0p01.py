# Table 4, GPT2 mid-training with dispersion with lambda = 0.01 (config/midtrain_gpt2_disp.py is the row lambda 0.1, tau 1).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_lambda0p01.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_disp_lambda0p01'
reg = 'dispersion'
reg_coeff = 0.01
reg_tau = 1.0
reg_loc = 'all'
reg_max_tokens = 256
