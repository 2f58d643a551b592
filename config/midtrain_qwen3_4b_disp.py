# Qwen3-4B mid-trained with L_train + dispersion loss (lambda 0.1, tau 1, every block, 256 tokens subsampled per
# sequence): does the dispersion loss still help past Table 2's sizes?
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_4b_disp.py
#   torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT train.py config/midtrain_qwen3_4b_disp.py
# Memory: as config/midtrain_qwen3_4b.py, about 17 GB per GPU on 8 GPUs; the loss adds little (it reads the
# block outputs, kept anyway, 256 tokens of each).
# Everything else: config/midtrain_qwen3_4b.py
from config.midtrain_qwen3_4b import *
out_dir = 'out/midtrain_qwen3_4b_disp'
reg = 'dispersion'
reg_coeff = 0.1              # lambda_disp (Table 4's best)
reg_tau = 1.0
reg_loc = 'all'              # every block's output
reg_max_tokens = 256         # the official loss subsamples 256 tokens per sequence
