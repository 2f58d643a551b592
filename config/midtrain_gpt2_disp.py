# Table 2, GPT2 mid-trained with L_train + dispersion loss (lambda 0.1, tau 1, every block, 256 tokens subsampled per sequence).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_disp'
reg = 'dispersion'
reg_coeff = 0.1              # lambda_disp (Table 4's best)
reg_tau = 1.0
reg_loc = 'all'              # every block's output
reg_max_tokens = 256         # the official loss subsamples 256 tokens per sequence
