# Figure S1, the Qwen1 family. Its repositories run their own modeling code, so the launch line opts in with
# --trust_remote_code=True: read that code on the hub first. Recipe as config/measure_gpt2.py (the official one).
# Qwen-72B is 290 GB in float32 (the authors measured their 14B and 72B on CPU): device_map='auto' fills the
# GPUs, then CPU memory, then disk; give your budget with --max_memory=0:70GiB,1:70GiB,cpu:200GiB.
#   python measure.py config/measure_qwen1.py --trust_remote_code=True       # out-measure/qwen1
init_from = ['Qwen/Qwen-1_8B', 'Qwen/Qwen-7B', 'Qwen/Qwen-14B', 'Qwen/Qwen-72B']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
device_map = 'auto'
out_dir = 'out-measure/qwen1'
