# Figure S1, the Qwen2.5 family (base models), recipe as config/measure_gpt2.py (the official one). The 32B and
# 72B models outgrow one GPU in float32 (128 and 290 GB): device_map='auto' fills the GPUs, then CPU memory, then
# disk; give your budget with --max_memory=0:70GiB,1:70GiB,cpu:200GiB (--dtype=bfloat16 halves it; the paper
# measured float32).
#   python measure.py config/measure_qwen2_5.py     # out-measure/qwen2_5
init_from = ['Qwen/Qwen2.5-0.5B', 'Qwen/Qwen2.5-1.5B', 'Qwen/Qwen2.5-3B', 'Qwen/Qwen2.5-7B', 'Qwen/Qwen2.5-14B',
             'Qwen/Qwen2.5-32B', 'Qwen/Qwen2.5-72B']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
device_map = 'auto'
out_dir = 'out-measure/qwen2_5'
