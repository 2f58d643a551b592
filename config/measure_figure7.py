# Figure 7, condensation before and after mid-training with the dispersion loss, measured as the official
# lm_dispersion/midtrain_gpt2_huggingface/plot_heatmaps.py does (github.com/KrishnaswamyLab/LM-Dispersion):
# 10 WikiText-103 texts (seeds 0..9, >= 1024 words each), the first 1024 tokens of each, float32; the token cosine
# matrices averaged over the texts, then one density column per hidden state; one row per run (the baseline, then the
# dispersion run with the largest lambda <= 1 found there: lambda = 1, Table 4's midtrain_gpt2_disp_lambda1p0), one
# column per saved evaluation checkpoint (step 0, every 306 steps, the end: config/midtrain_gpt2.py keeps them).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2.py
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_lambda1p0.py
#   python measure.py config/measure_figure7.py        # out-measure/figure7/heatmap_grid.png
ckpt = ['out/midtrain_gpt2', 'out/midtrain_gpt2_disp_lambda1p0']
snapshots = True
hf_dataset = 'wikitext'
num_samples = 10
seq_len = 1024
dtype = 'float32'
out_dir = 'out-measure/figure7'
