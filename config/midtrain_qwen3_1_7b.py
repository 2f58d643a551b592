# Table 2, Qwen3-1.7B mid-trained with L_train only; shared settings of the Qwen3-1.7B configs.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_1_7b.py
# Hardware: about 10 A100 GPU-hours; same recipe as config/midtrain_qwen3_0_6b.py.
from config.midtrain_qwen3_0_6b import *
init_from = 'Qwen/Qwen3-1.7B'
out_dir = 'out/midtrain_qwen3_1_7b'
