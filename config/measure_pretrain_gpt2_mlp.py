# Figure 3, the controlled size study, measured as the official toy study measures it
# (github.com/KrishnaswamyLab/LM-Dispersion, lm_dispersion/pretrain_toy_gpt2_change_ffn/plot_heatmaps.py):
# 100 wikitext-103 texts (seeds 0..99, >= 1024 words each), the first 1024 tokens of each, float32, on the four
# models that differ only in MLP width. The trend's x axis is their parameter count (69M to 143M).
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_gpt2_mlp64.py    # and 256, 1024, 4096
#   python measure.py config/measure_pretrain_gpt2_mlp.py     # out-measure/pretrain_gpt2_mlp
# The official figure also has a row for each model's first evaluation checkpoint: with snapshots kept
# (train.py --snapshot_interval), --snapshots=True measures every step.
ckpt = ['out/pretrain_gpt2_mlp64', 'out/pretrain_gpt2_mlp256', 'out/pretrain_gpt2_mlp1024',
        'out/pretrain_gpt2_mlp4096']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 1024
dtype = 'float32'
out_dir = 'out-measure/pretrain_gpt2_mlp'
