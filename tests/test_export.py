"""export.py: a train.py checkpoint out as a Hugging Face folder that transformers and lm-eval read on their own.

HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q tests/test_export.py

Hermetic: tiny random checkpoints in train.py's format (a GPT-2 with the byte tokenizer, a Qwen3 with a BPE tokenizer
trained in-process and saved as a folder), lm-eval tasks over local JSON (test_eval.py's). The references are
transformers' AutoModelForCausalLM / AutoTokenizer and lm-eval's own hf model loading the folder by its path.
"""
import os

# read once at import time by huggingface_hub / datasets / transformers: set before anything imports them
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import importlib
import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

import data
import eval as eval_script
import export
from model import GPT, GPTConfig, Qwen3, Qwen3Config
from test_eval import TEXTS, assert_same_scores, bpe_tokenizer, task_dir  # noqa: F401 (task_dir: a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = "Héllo, wörld! The quick brown fox 🦊 jumps.\n" + TEXTS[0]


def perturb_(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # the init is small: make the logits differ between tokens
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def write_run(folder, model, meta, name="ckpt.pt", step=10):
    """A checkpoint in train.py's format (training_state's keys) in folder/name."""
    os.makedirs(folder, exist_ok=True)
    ckpt = {"arch": model.arch, "model_args": asdict(model.config), "model": model.state_dict(), "optimizer": {},
            "step": step, "config": {"seed": 3, "reg": "dispersion"}, "data_meta": meta}
    torch.save(ckpt, os.path.join(folder, name))
    return os.path.join(folder, name)


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    """A tiny GPT-2 trained (as far as the export cares) on byte-tokenized data."""
    torch.manual_seed(0)
    model = perturb_(GPT(GPTConfig(block_size=32, vocab_size=257, n_layer=2, n_head=2, n_embd=32)), 1)
    run = str(tmp_path_factory.mktemp("gpt_run"))
    write_run(run, model, {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256})
    return run, model


@pytest.fixture(scope="module")
def qwen_run(tmp_path_factory):
    """A tiny Qwen3 (GQA, untied head, vocabulary padded past the tokenizer's) on data tokenized by a local tokenizer
    folder, as a hub id's would be."""
    tok_dir = str(tmp_path_factory.mktemp("bpe_tokenizer"))
    tok = bpe_tokenizer()
    tok.save_pretrained(tok_dir)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=416, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                         rope_theta=1e4, tie_word_embeddings=False)
    model = perturb_(Qwen3(config), 2)
    run = str(tmp_path_factory.mktemp("qwen_run"))
    write_run(run, model, {"tokenizer": tok_dir, "dtype": "uint16", "vocab_size": len(tok),
                           "eot_token": tok.eos_token_id})
    return run, model


def run_main(*args):
    """export.py's command line in this process; reload() resets the config globals that configure() overwrites."""
    return importlib.reload(export).main(list(args))


def refused(capsys, *args):
    """Run export.py expecting a refusal: exit code 2 and one `error: ...` line. Returns that line."""
    with pytest.raises(SystemExit) as e:
        run_main(*args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def leftovers(folder):
    """The hidden temporary folders export.py writes beside out_dir."""
    return [n for n in os.listdir(folder) if n.startswith(".") and ("tmp-" in n or "old-" in n)]


@pytest.mark.parametrize("which", ["gpt", "qwen3"])
def test_export_loads_in_transformers(which, gpt_run, qwen_run, tmp_path, capsys):
    run, model = {"gpt": gpt_run, "qwen3": qwen_run}[which]
    out = str(tmp_path / "hf")
    run_main(f"--ckpt={run}", f"--out_dir={out}")
    stdout = capsys.readouterr().out
    meta = torch.load(os.path.join(run, "ckpt.pt"), weights_only=True)["data_meta"]
    assert f"wrote {out}: " in stdout and "float32" in stdout and f"tokenizer: '{meta['tokenizer']}'" in stdout
    files = set(os.listdir(out))
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not any(f.endswith((".bin", ".pt")) for f in files) and not leftovers(str(tmp_path))
    # transformers on its own, by the folder's path: the same logits as our model
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert type(hf).__name__ == {"gpt": "GPT2LMHeadModel", "qwen3": "Qwen3ForCausalLM"}[which]
    assert hf.dtype == torch.float32
    idx = torch.randint(0, meta["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, _ = model(idx)
        got = hf(idx).logits
    assert got.shape == want.shape and (got - want).abs().max().item() <= 1e-5
    assert want.std().item() > 0.1  # logits that differ between tokens: equality means something
    # bos/eos/pad of generation: the data's end-of-text
    gen = json.load(open(os.path.join(out, "generation_config.json")))
    assert gen["bos_token_id"] == gen["eos_token_id"] == gen["pad_token_id"] == meta["eot_token"]
    assert hf.config.eos_token_id == meta["eot_token"]
    # the tokenizer: AutoTokenizer reads it, and it encodes as the data's tokenizer did
    tok, ours = AutoTokenizer.from_pretrained(out), data.get_tokenizer(meta["tokenizer"])
    for text in (SAMPLE, *TEXTS):
        ids = tok(text)["input_ids"]
        assert ids == ours.encode(text) and len(ids) > 10
        assert tok.decode(ids) == ours.decode(ids)
    assert len(tok) == meta["vocab_size"] and tok.eos_token_id == meta["eot_token"]
    assert os.stat(os.path.join(out, "model.safetensors")).st_mode & 0o044  # readable by others (umask 022)


def test_bfloat16_weights(qwen_run, tmp_path, capsys):
    run, model = qwen_run
    out = str(tmp_path / "hf_bf16")
    run_main(f"--ckpt={run}", f"--out_dir={out}", "--dtype=bfloat16")
    assert "bfloat16" in capsys.readouterr().out
    assert json.load(open(os.path.join(out, "config.json")))["dtype"] == "bfloat16"
    ours = model.state_dict()  # our Qwen3 names are HF's: every stored tensor is ours rounded to bfloat16
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert sorted(names) == sorted(ours)
        for name in names:
            t = f.get_tensor(name)
            assert t.dtype == torch.bfloat16 and torch.equal(t, ours[name].to(torch.bfloat16)), name
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.bfloat16


def test_lm_eval_on_folder_matches_eval_py(gpt_run, task_dir, tmp_path, capsys):  # noqa: F811
    """lm-eval's own hf model on the exported folder (as `lm_eval --model hf --model_args pretrained=<folder>`)
    scores what eval.py's evaluate() scores on the checkpoint: same task, limit and seed."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    run, model = gpt_run
    out = str(tmp_path / "hf")
    run_main(f"--ckpt={run}", f"--out_dir={out}")
    tasks, seed = ["tiny_mc", "tiny_ppl"], 3
    r = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={out},dtype=float32", device="cpu", batch_size=1,
                                tasks=tasks, num_fewshot=2, limit=500, log_samples=True,
                                task_manager=TaskManager(include_path=task_dir, include_defaults=False),
                                random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                fewshot_random_seed=seed)
    ref = {t: (r["results"][t], r["samples"][t]) for t in tasks}
    got = eval_script.evaluate(model, "byte", tasks, num_fewshot=2, limit=500, seed=seed, include_path=task_dir,
                               log_samples=True)
    assert_same_scores(got["results"], got["samples"], ref)


def test_gpt2_tokenizer_offline(tmp_path, capsys):
    """'gpt2' data: offline the hub tokenizer cannot load; the weights are written, with one line saying how to add
    the tokenizer. A step snapshot goes to hf_<step>/ beside it."""
    try:
        AutoTokenizer.from_pretrained("gpt2")
        pytest.skip("the gpt2 tokenizer is cached on this machine: the offline path cannot be reached")
    except OSError:
        pass
    model = perturb_(GPT(GPTConfig(block_size=16, vocab_size=50304, n_layer=1, n_head=2, n_embd=8)), 3)
    ckpt = write_run(str(tmp_path / "run"), model, {"tokenizer": "gpt2", "dtype": "uint16", "vocab_size": 50257,
                                                    "eot_token": 50256}, name="ckpt_000500.pt", step=500)
    run_main(f"--ckpt={ckpt}")
    out = tmp_path / "run" / "hf_000500"
    lines = capsys.readouterr().out.splitlines()
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "tokenizer not written" in warnings[0]
    assert f"AutoTokenizer.from_pretrained('gpt2').save_pretrained('{out}')" in warnings[0]
    assert sorted(os.listdir(out)) == ["config.json", "export.json", "generation_config.json", "model.safetensors"]
    assert json.load(open(out / "generation_config.json"))["eos_token_id"] == 50256
    assert json.load(open(out / "export.json"))["step"] == 500
    assert AutoModelForCausalLM.from_pretrained(str(out)).config.vocab_size == 50304


def test_refusals(gpt_run, tmp_path, capsys):
    """A missing, foreign or truncated checkpoint, a bad dtype or repo id, an out_dir in use: one line, exit 2, and
    nothing written."""
    run, _ = gpt_run
    out = tmp_path / "hf"
    (tmp_path / "empty_run").mkdir()
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(open(os.path.join(run, "ckpt.pt"), "rb").read()[:5000])
    for args, needle in [((f"--ckpt={tmp_path / 'nope'}",), "no checkpoint at"),
                         ((f"--ckpt={tmp_path / 'empty_run'}",), "no checkpoint at"),
                         ((f"--ckpt={foreign}",), "not a train.py checkpoint"),
                         ((f"--ckpt={truncated}",), "damaged or not a torch file"),
                         ((f"--ckpt={run}", "--dtype=fp8"),
                          "--dtype='fp8': must be one of 'float32', 'bfloat16', 'float16'"),
                         ((f"--ckpt={run}", "--push_to_hub=not a/repo/id"), "is not a hub repo id")]:
        assert needle in refused(capsys, *args, f"--out_dir={out}")
        assert not out.exists() and not leftovers(str(tmp_path))
    # an out_dir with other things in it, with or without overwrite; the run's own folder
    (out / "notes").mkdir(parents=True)
    assert "exists and is not empty" in refused(capsys, f"--ckpt={run}", f"--out_dir={out}")
    assert "not an earlier export" in refused(capsys, f"--ckpt={run}", f"--out_dir={out}", "--overwrite=True")
    assert os.listdir(out) == ["notes"]
    open(os.path.join(run, "config.json"), "w").close()  # even if it looks like an export
    try:
        assert "holds the checkpoint" in refused(capsys, f"--ckpt={run}", f"--out_dir={run}", "--overwrite=True")
    finally:
        os.remove(os.path.join(run, "config.json"))
    assert os.path.isfile(os.path.join(run, "ckpt.pt"))


def test_overwrite_and_interrupted_export(gpt_run, tmp_path, capsys, monkeypatch):
    """--overwrite replaces an earlier export; an export interrupted while writing leaves the earlier one whole, or
    no folder at all, and no temporary folder."""
    run, _ = gpt_run
    out = tmp_path / "hf"
    run_main(f"--ckpt={run}", f"--out_dir={out}")
    run_main(f"--ckpt={run}", f"--out_dir={out}", "--overwrite=True", "--dtype=float16")
    assert json.load(open(out / "config.json"))["dtype"] == "float16" and not leftovers(str(tmp_path))
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}

    def interrupted(self, *args, **kwargs):  # Ctrl-C after the weights, before the tokenizer
        raise KeyboardInterrupt

    from transformers import PreTrainedTokenizerBase
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_main(f"--ckpt={run}", f"--out_dir={out}", "--overwrite=True")
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    with pytest.raises(KeyboardInterrupt):
        run_main(f"--ckpt={run}", f"--out_dir={tmp_path / 'fresh'}")
    assert not (tmp_path / "fresh").exists() and not leftovers(str(tmp_path))
    capsys.readouterr()


def test_push_to_hub_calls(gpt_run, tmp_path, capsys, monkeypatch):
    """The hub calls are made on the written folder (the upload itself needs the network: not tested here); a
    failed push is one line and leaves the local folder."""
    import huggingface_hub
    run, _ = gpt_run
    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.append(("upload", kw)))
    out = str(tmp_path / "hf")
    run_main(f"--ckpt={run}", f"--out_dir={out}", "--push_to_hub=me/tiny-run")
    assert calls[0] == ("create", "me/tiny-run", {"private": True, "exist_ok": True})
    assert calls[1][0] == "upload" and calls[1][1]["repo_id"] == "me/tiny-run" and calls[1][1]["folder_path"] == out

    def offline(repo_id, **kw):
        raise huggingface_hub.errors.OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode")
    monkeypatch.setattr(huggingface_hub, "create_repo", offline)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(f"--ckpt={run}", f"--out_dir={tmp_path / 'hf2'}", "--push_to_hub=me/tiny-run")
    err = capsys.readouterr().err  # after transformers' progress bar of the save
    last = err.strip().splitlines()[-1]
    assert e.value.code == 1 and "Traceback" not in err
    assert last.startswith("error: could not push") and "offline" in last
    assert os.path.isfile(tmp_path / "hf2" / "model.safetensors")


def test_cli_refusal(tmp_path):
    """The script itself: exit 2, one line, no traceback."""
    p = subprocess.run([sys.executable, "export.py", f"--ckpt={tmp_path / 'nope'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: no checkpoint at") and len(p.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []
