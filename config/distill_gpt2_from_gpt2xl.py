# An extension beyond the paper: does knowledge distillation of our own undo condensation? GPT2 mid-trained on
# WikiText-103 with a KL term towards the frozen GPT2-xl (same tokenizer), everything else as
# config/midtrain_gpt2.py. The KD weight and temperature (1.0, T = 2) are ours. The paper's Figure 5 is a
# measurement of published models instead: config/measure_distill_qwen2_5.py.
#   torchrun --standalone --nproc_per_node=8 train.py config/distill_gpt2_from_gpt2xl.py
#   python measure.py --ckpt=out/midtrain_gpt2,out/distill_gpt2_from_gpt2xl --out_dir=out-measure/kd_gpt2
# Hardware: the teacher's forward passes make this about 3x the plain run (~3 A100 GPU-hours).
from config.midtrain_gpt2 import *
out_dir = 'out/distill_gpt2_from_gpt2xl'
teacher = 'gpt2-xl'
kd_coeff = 1.0
kd_temperature = 2.0
