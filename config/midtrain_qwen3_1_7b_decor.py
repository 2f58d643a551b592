# Table 2, Qwen3-1.7B mid-trained with L_train + decorrelation.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_1_7b_decor.py
# Hardware: about 10 A100 GPU-hours. Everything else: config/midtrain_qwen3_1_7b.py
from config.midtrain_qwen3_1_7b import *
out_dir = 'out/midtrain_qwen3_1_7b_decor'
reg = 'decorrelation'
reg_coeff = 0.1
reg_max_tokens = 256
