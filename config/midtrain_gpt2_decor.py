# Table 2, GPT2 mid-trained with L_train + decorrelation.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_decor.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_decor'
reg = 'decorrelation'
reg_coeff = 0.1
reg_max_tokens = 256
