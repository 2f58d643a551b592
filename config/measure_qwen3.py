# Figures 2 and S1, the Qwen3 family (the official ids: the post-trained releases), recipe as
# config/measure_gpt2.py (the official one). Qwen3-32B is 131 GB in float32: device_map='auto' fills the GPUs,
# then CPU memory, then disk (--max_memory=0:70GiB,1:70GiB,cpu:200GiB gives your budget).
#   python measure.py config/measure_qwen3.py       # out-measure/qwen3
init_from = ['Qwen/Qwen3-0.6B', 'Qwen/Qwen3-1.7B', 'Qwen/Qwen3-4B', 'Qwen/Qwen3-8B', 'Qwen/Qwen3-14B',
             'Qwen/Qwen3-32B']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
device_map = 'auto'
out_dir = 'out-measure/qwen3'
