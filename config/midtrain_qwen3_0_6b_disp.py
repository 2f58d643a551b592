# Table 2, Qwen3-0.6B mid-trained with L_train + dispersion loss (lambda 0.1, tau 1, every block, 256 tokens subsampled per sequence).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_0_6b_disp.py
# Hardware: about 5 A100 GPU-hours. Everything else: config/midtrain_qwen3_0_6b.py
from config.midtrain_qwen3_0_6b import *
out_dir = 'out/midtrain_qwen3_0_6b_disp'
reg = 'dispersion'
reg_coeff = 0.1              # lambda_disp (Table 4's best)
reg_tau = 1.0
reg_loc = 'all'              # every block's output
reg_max_tokens = 256         # the official loss subsamples 256 tokens per sequence
