# Figure 5, knowledge distillation is no remedy: each DeepSeek-R1-Distill model against the Qwen2.5 model it was
# distilled into (the official `plot_trend.py --paired` list). pairs=True: init_from holds the four bases, then
# the four distilled models in the same order; pairs.png draws each pair. Recipe as config/measure_gpt2.py.
# The 32B models are 131 GB in float32: device_map='auto' fills the GPUs, then CPU memory, then disk.
#   python measure.py config/measure_distill_qwen2_5.py     # out-measure/distill_qwen2_5: pairs.png, trend.png
_bases = ['Qwen/Qwen2.5-Math-1.5B', 'Qwen/Qwen2.5-Math-7B', 'Qwen/Qwen2.5-14B', 'Qwen/Qwen2.5-32B']
_distilled = ['deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B', 'deepseek-ai/DeepSeek-R1-Distill-Qwen-7B',
              'deepseek-ai/DeepSeek-R1-Distill-Qwen-14B', 'deepseek-ai/DeepSeek-R1-Distill-Qwen-32B']
init_from = _bases + _distilled
pairs = True
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
device_map = 'auto'
out_dir = 'out-measure/distill_qwen2_5'
