# Figure 4, condensation from initialization through pre-training: checkpoints of Olmo-3-1025-7B, which the hub
# keeps as branches ('stage1-step1000', ..., 'stage1-step1413814', 'stage2-step47684', 'stage3-step11921' = main).
# 'id@pattern' measures every branch the glob matches, in training order (stage, then tokens or step): here the
# initialization, every 100,000th stage-1 step, the ends of stages 1 and 2, and the final base model (main).
# Recipe as config/measure_gpt2.py. About 18 checkpoints of 7B (15 GB each to download); one GPU.
#   python measure.py config/measure_olmo3_stages.py       # out-measure/olmo3_stages
_repo = 'allenai/Olmo-3-1025-7B'
init_from = [f'{_repo}@stage1-step0', f'{_repo}@stage1-step*00000', f'{_repo}@stage1-step1413814',
             f'{_repo}@stage2-step47684', _repo]
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
out_dir = 'out-measure/olmo3_stages'
