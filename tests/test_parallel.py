"""parallel.py and train.py --parallel=fsdp on CPU: two gloo processes under torchrun (FSDP2 and
torch.distributed.checkpoint run there) train what one process trains, with a Qwen3-shaped model with grouped-query
attention and the dispersion loss on; sharded checkpoints resume on another number of processes, are written
atomically, and never run code a hostile folder holds; activation checkpointing changes no number.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_parallel.py     (about 2 minutes on 2 cores, mostly the 2-process runs)

The torchrun runs are subprocesses (several processes are what they check); one plain process is the command line
run in this one (train_here, run_in_process), without drawing figures none of these tests looks at.
"""
import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

from conftest import run_in_process
from test_train import ROOT, data_dir, metrics, train, train_here, train_losses  # noqa: F401 (data_dir: a fixture)
from test_trust import Hostile, assert_one_line_error, snapshot

# Qwen3 with grouped-query attention (2 query heads share 1 key/value head), the dispersion loss on, a global
# batch of 2 micro-batches (one per process under torchrun), the schedule fixed at 8 steps whatever max_iters is,
# eval only at the end on 3 val batches (uneven over 2 processes: FSDP must still run the same forwards on each)
QWEN = ["--arch=qwen3", "--n_kv_head=1", "--reg=dispersion", "--reg_coeff=0.5", "--gradient_accumulation_steps=2",
        "--lr_decay_iters=8", "--eval_interval=100", "--eval_iters=3", "--condensation_samples=4"]
FSDP = ["--parallel=fsdp"]


def logged(out_dir, key):
    return {m["step"]: m[key] for m in metrics(out_dir) if key in m}


def assert_same_run(a, b, tol, keys=("train_loss", "reg_loss", "grad_norm"), upto=None):
    """Two runs logged the same steps with the same numbers, within tol (relative for the gradient norm); with
    upto, their steps up to that one."""
    for key in keys:
        x, y = logged(a, key), logged(b, key)
        if upto is not None:
            x = {s: v for s, v in x.items() if s <= upto}
        assert sorted(x) == sorted(y) and x, (key, sorted(x), sorted(y))
        for s in x:
            scale = abs(x[s]) if key == "grad_norm" else 1.0
            assert abs(x[s] - y[s]) <= tol * scale, (key, s, x[s], y[s])


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """One plain process, 8 steps: what every run below must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train_here(out, data_dir, *QWEN, "--max_iters=8")
    return out


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, data_dir):
    """Two FSDP processes, 8 steps, the same global batches."""
    out = tmp_path_factory.mktemp("fsdp") / "run"
    train(out, data_dir, *QWEN, *FSDP, "--max_iters=8", nproc=2)
    return out


def test_two_fsdp_processes_train_what_one_process_trains(reference, fsdp_run):
    """Every step's loss, dispersion loss and gradient norm (the norm clip_grad_norm_ computes over the DTensor
    shards, before clipping), then the val loss and the live probe: as one process, to 1e-4."""
    assert sorted(train_losses(fsdp_run)) == list(range(1, 9))
    assert_same_run(reference, fsdp_run, 1e-4)
    assert max(logged(reference, "grad_norm").values()) > 1.0  # clipping was active: the norm mattered
    a, b = [[m for m in metrics(r) if "val_loss" in m][-1] for r in (reference, fsdp_run)]
    assert a["step"] == b["step"] == 8
    assert abs(a["val_loss"] - b["val_loss"]) <= 1e-4
    assert np.allclose(a["mean_cossim"], b["mean_cossim"], atol=1e-4, rtol=0)


def test_fsdp_run_writes_full_weights_that_every_reader_loads(reference, fsdp_run, tmp_path, data_dir, monkeypatch):
    """An FSDP run ends with ckpt.pt holding its full weights (no optimizer): the same tensors as its sharded
    checkpoint read back in one plain process, the model the one-process run trained, and measure.py measures
    them as transformers' own Qwen3 computes the hidden states."""
    from parallel import load_checkpoint
    ckpt = torch.load(fsdp_run / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 8 and "optimizer" not in ckpt and ckpt["arch"] == "qwen3"
    assert (fsdp_run / "ckpt_sharded" / "train_state.pt").is_file() and (fsdp_run / "condensation.json").is_file()
    full, _ = load_checkpoint(str(fsdp_run))
    sharded, state = load_checkpoint(str(fsdp_run / "ckpt_sharded"))
    one, _ = load_checkpoint(str(reference))
    assert state["step"] == 8 and state["sharded"] == {"processes": 2}
    for (name, a), b, c in zip(full.state_dict().items(), sharded.state_dict().values(), one.state_dict().values()):
        assert torch.equal(a, b), name
        assert torch.allclose(a, c, atol=1e-5, rtol=0), (name, (a - c).abs().max())

    import figures
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: fig)  # its heatmap: not what this checks
    r = run_in_process("measure.py", f"--ckpt={fsdp_run}", f"--dataset={data_dir}", "--seq_len=16", "--num_samples=4",
                       f"--out_dir={tmp_path / 'm'}")
    assert r.returncode == 0, r.stderr[-3000:]
    measured = json.loads((tmp_path / "m" / "condensation.json").read_text())
    from transformers import Qwen3Config, Qwen3ForCausalLM
    a = ckpt["model_args"]
    hf = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=a["vocab_size"], hidden_size=a["hidden_size"], intermediate_size=a["intermediate_size"],
        num_hidden_layers=a["num_hidden_layers"], num_attention_heads=a["num_attention_heads"],
        num_key_value_heads=a["num_key_value_heads"], head_dim=a["head_dim"],
        max_position_embeddings=a["max_position_embeddings"], rms_norm_eps=a["rms_norm_eps"],
        rope_parameters={"rope_type": "default", "rope_theta": a["rope_theta"]}, tie_word_embeddings=True,
        attn_implementation="eager"))
    hf.load_state_dict(ckpt["model"])  # our names are transformers' own
    val = np.fromfile(os.path.join(data_dir, "val.bin"), dtype=np.uint16)
    windows = torch.tensor(np.stack([val[s:s + 16] for s in measured["starts"]]).astype(np.int64))
    with torch.no_grad():
        hidden = hf(windows, output_hidden_states=True).hidden_states
    # mean over all T^2 token pairs of the cosine matrix, diagonal included, averaged over windows (float64)
    want = [float(np.mean([(u @ u.T).mean() for u in (h / np.linalg.norm(h, axis=-1, keepdims=True))]))
            for h in (t.double().numpy() for t in hidden)]
    assert len(want) == len(measured["mean_cossim"]) == 3
    assert np.allclose(measured["mean_cossim"], want, atol=1e-5, rtol=0), (measured["mean_cossim"], want)


@pytest.fixture(scope="module")
def fsdp_resumed(tmp_path_factory, data_dir):
    """2 steps by one plain process, continued to step 4 by two FSDP processes (which end with their sharded
    checkpoint) -> (out_dir, the FSDP run's result). Tests copy it before resuming it."""
    out = tmp_path_factory.mktemp("resumed") / "run"
    train_here(out, data_dir, *QWEN, "--max_iters=2")
    r = train(out, data_dir, *QWEN, *FSDP, "--max_iters=4", "--init_from=resume", nproc=2)
    return out, r


def test_one_process_checkpoint_resumes_in_two_fsdp_processes(reference, fsdp_resumed):
    """ckpt.pt of one process (full weights and AdamW state keyed by position) is sliced onto two processes."""
    out, r = fsdp_resumed
    assert "start at step 2" in r.stdout
    assert_same_run(reference, out, 1e-4, upto=4)
    assert torch.load(out / "ckpt_sharded" / "train_state.pt", weights_only=True)["step"] == 4


@pytest.mark.parametrize("nproc", [1, 2], ids=["one_plain_process", "two_ddp_processes"])
def test_fsdp_checkpoint_resumes_without_fsdp(reference, fsdp_resumed, tmp_path, data_dir, nproc):
    """Stopped after 4 steps by 2 FSDP processes, continued to 8 by one plain process (or by DDP, where each
    process reads whole tensors): every step as the uninterrupted run."""
    out = tmp_path / "run"
    shutil.copytree(fsdp_resumed[0], out)
    assert torch.load(out / "ckpt_sharded" / "train_state.pt", weights_only=True)["step"] == 4
    args = [*QWEN, "--max_iters=8", "--init_from=resume"]
    r = train_here(out, data_dir, *args) if nproc == 1 else train(out, data_dir, *args, nproc=nproc)
    assert "start at step 4" in r.stdout
    assert_same_run(reference, out, 1e-4)
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 8 and "optimizer" in ckpt  # a full training checkpoint now, the later one


def test_activation_checkpointing_changes_no_loss(reference, fsdp_run, tmp_path, data_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    train_here(one, data_dir, *QWEN, "--max_iters=8", "--activation_checkpoint=True")
    train(two, data_dir, *QWEN, *FSDP, "--max_iters=8", "--activation_checkpoint=True", nproc=2)
    assert_same_run(reference, one, 1e-5)
    assert_same_run(fsdp_run, two, 1e-5)


def test_fsdp_active_forgetting_and_snapshots(tmp_path, data_dir):
    """Active forgetting re-draws the embedding (each process keeps its slice of the same draw) and FSDP's
    snapshots hold the full weights, no optimizer: the same losses and snapshot weights as one process."""
    args = [*QWEN, "--max_iters=6", "--active_forgetting_every=3", "--snapshot_interval=4"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_here(one, data_dir, *args)
    train(two, data_dir, *args, *FSDP, nproc=2)
    assert_same_run(one, two, 1e-4)
    a, b = (torch.load(r / "ckpt_000004.pt", weights_only=True) for r in (one, two))
    assert "optimizer" not in b and b["step"] == 4
    for name in a["model"]:
        assert torch.allclose(a["model"][name], b["model"][name], atol=1e-5, rtol=0), name
    assert abs(a["model"]["model.embed_tokens.weight"].std().item() - 0.02) < 0.002  # re-drawn at step 3


def test_fsdp_bfloat16_keeps_float32_shards(tmp_path, data_dir):
    """dtype=bfloat16 under FSDP: blocks compute with bfloat16 copies of the weights (MixedPrecisionPolicy), the
    weights and AdamW's moments stay float32 (what the sharded checkpoint stores says so); the losses are one
    process's bfloat16 autocast losses but for bfloat16 rounding (norm weights and the residual stream in bfloat16)."""
    args = [*QWEN, "--max_iters=4", "--dtype=bfloat16"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_here(one, data_dir, *args)
    train(two, data_dir, *args, *FSDP, nproc=2)
    assert_same_run(one, two, 2e-3, keys=("train_loss", "reg_loss"))
    with open(two / "ckpt_sharded" / ".metadata", "rb") as f:
        stored = pickle.load(f).state_dict_metadata  # our own file, just written
    tensors = {k: v.properties.dtype for k, v in stored.items() if hasattr(v, "properties")}
    weights = [k for k in tensors if k.startswith("model.")]
    moments = [k for k in tensors if k.endswith(("exp_avg", "exp_avg_sq"))]
    from model import build_model
    model = build_model("qwen3", 257, 32, 2, 2, 32, n_kv_head=1)
    assert len(weights) == len(model.state_dict()) == 25  # lm_head.weight, the embedding's, listed under both names
    assert len(moments) == 2 * len(list(model.parameters())) == 2 * 24  # one pair per parameter, the tied one once
    assert {tensors[k] for k in weights + moments} == {torch.float32}


def test_activation_checkpointing_recomputes_and_keeps_every_hidden_state():
    """In one process: with checkpointing the model returns the same n_layer + 1 hidden states, the loss with the
    dispersion loss on every block has the same gradient, each block's MLP runs again in backward, and autograd
    keeps fewer bytes (counted by torch's saved-tensor hooks)."""
    import losses
    from model import build_model
    from parallel import parallelize

    def step(checkpointed):
        torch.manual_seed(0)
        model = build_model("qwen3", 50, 16, 3, 4, 32, n_kv_head=2)
        calls = []
        # a pre-hook: recomputation stops as soon as it has what backward needs, before the MLP's end
        model.blocks[1].mlp.register_forward_pre_hook(lambda *_: calls.append(1))
        model = parallelize(model, "ddp", "cpu", torch.float32, activation_checkpoint=checkpointed)
        x = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(1))
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            _, loss, hidden = model(x, x, return_hidden=True)
            total = loss + losses.hidden_reg_loss(hidden, "dispersion", loc=[1, 2, 3])
        forward_calls = len(calls)
        total.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        return hidden, total, grads, forward_calls, len(calls), sum(saved)

    h0, t0, g0, f0, b0, saved0 = step(False)
    h1, t1, g1, f1, b1, saved1 = step(True)
    assert len(h1) == len(h0) == 4
    for a, b in zip(h0, h1):
        assert torch.equal(a, b)
    assert torch.equal(t0, t1)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert (f0, b0) == (1, 1) and (f1, b1) == (1, 2)  # run again in backward only when checkpointed
    assert saved1 < 0.6 * saved0, (saved1, saved0)

# -----------------------------------------------------------------------------
# sharded checkpoints are data, never code, and a crash while saving loses nothing


def small_sharded(folder, step=1):
    """A sharded checkpoint written by save_sharded in this one process, and the model and optimizer it holds."""
    from checkpoint import training_state
    from model import build_model
    from parallel import save_sharded
    torch.manual_seed(step)
    model = build_model("qwen3", 40, 16, 2, 2, 16, n_kv_head=1)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    model(torch.randint(0, 40, (2, 16)), torch.randint(0, 40, (2, 16)))[1].backward()
    optimizer.step()
    state = training_state(model, optimizer, torch.amp.GradScaler("cpu", enabled=False), step, {"seed": 1},
                           {"tokenizer": "byte"}, {"hours": 0.0, "processes": 1, "device": "cpu"})
    save_sharded(str(folder), model, optimizer, state)
    return model, optimizer


def test_sharded_checkpoint_round_trip_in_one_process(tmp_path):
    from model import build_model
    from parallel import load_checkpoint, load_sharded
    model, optimizer = small_sharded(tmp_path / "ckpt_sharded", step=3)
    assert sorted(os.listdir(tmp_path)) == ["ckpt_sharded"]  # no .tmp or .old left
    loaded, state = load_checkpoint(str(tmp_path / "ckpt_sharded"))
    assert state["step"] == 3 and "model" not in state and "optimizer" not in state
    assert load_checkpoint(str(tmp_path))[1]["step"] == 3  # an out_dir with no ckpt.pt: its sharded checkpoint
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    fresh = build_model("qwen3", 40, 16, 2, 2, 16, n_kv_head=1)
    fresh_opt = fresh.configure_optimizers(0.3, 2e-3, (0.8, 0.9), "cpu")  # its lr, betas, decay: read from disk
    load_sharded(str(tmp_path / "ckpt_sharded"), fresh, fresh_opt)
    want, got = optimizer.state_dict(), fresh_opt.state_dict()
    assert want["param_groups"] == got["param_groups"] and got["param_groups"][0]["lr"] == 1e-3
    for k in want["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(want["state"][k][key], got["state"][k][key]), (k, key)


def hostile_metadata(folder, marker):
    """Rewrite folder/.metadata (a pickle) with a Hostile object inside, whose unpickling creates marker."""
    with open(folder / ".metadata", "rb") as f:
        metadata = pickle.load(f)  # our own, just written
    metadata.planner_data = {"hook": Hostile(marker)}
    with open(folder / ".metadata", "wb") as f:
        pickle.dump(metadata, f)


def test_hostile_metadata_never_runs(tmp_path):
    """Loading refuses a .metadata that names anything but DCP's classes, before unpickling it further; DCP's own
    reader runs its code (the control: the marker shows it). A data file outside the folder is refused too."""
    import torch.distributed.checkpoint as dcp
    from parallel import load_checkpoint
    folder = tmp_path / "ckpt_sharded"
    model, _ = small_sharded(folder)
    hostile_metadata(folder, tmp_path / "RAN")
    with pytest.raises(ValueError, match=r"\.metadata holds more than DCP's metadata \(GLOBAL (io|builtins)\.open\)"):
        load_checkpoint(str(folder))
    assert not (tmp_path / "RAN").exists()
    with pytest.warns(UserWarning):  # one process: DCP says so
        dcp.load({"model": model.state_dict()}, storage_reader=dcp.FileSystemReader(str(folder)))
    assert (tmp_path / "RAN").exists()  # the payload is live: plain DCP ran it

    escape = tmp_path / "escape"
    small_sharded(escape)
    with open(escape / ".metadata", "rb") as f:
        metadata = pickle.load(f)
    for info in metadata.storage_data.values():
        info.relative_path = "../" + info.relative_path
    with open(escape / ".metadata", "wb") as f:
        pickle.dump(metadata, f)
    with pytest.raises(ValueError, match="names a data file outside"):
        load_checkpoint(str(escape))
    data = (escape / ".metadata").read_bytes()
    (escape / ".metadata").write_bytes(data[:len(data) // 2])  # cut short, as by a copy that did not finish
    with pytest.raises(ValueError, match=r"\.metadata is damaged: ") as info:
        load_checkpoint(str(escape))
    assert "\n" not in str(info.value)


def test_hostile_optimizer_entry_never_runs(tmp_path):
    """DCP stores non-tensor values (an optimizer's lr, betas, names) as pickles, which its default planner loads
    with weights_only=False; load_sharded reads them with weights_only=True."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from parallel import load_sharded
    folder = tmp_path / "ckpt_sharded"
    model, optimizer = small_sharded(folder)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    optimizer_state["param_groups"][0]["weight_decay"] = Hostile(tmp_path / "RAN")  # an entry loading reads
    shutil.rmtree(folder)
    with pytest.warns(UserWarning):
        dcp.save({"model": model_state, "optimizer": optimizer_state}, storage_writer=dcp.FileSystemWriter(str(folder)))
    with pytest.raises(ValueError, match=r"could not load the sharded checkpoint .*: its entry "
                                         r"optimizer.param_groups.0.weight_decay holds more than tensors and plain "
                                         r"values \(GLOBAL (io|builtins).open\)"):
        load_sharded(str(folder), model, optimizer)
    assert not (tmp_path / "RAN").exists()
    _, optimizer_state = get_state_dict(model, optimizer)
    with pytest.warns(UserWarning):
        dcp.load({"optimizer": optimizer_state}, storage_reader=dcp.FileSystemReader(str(folder)))
    assert (tmp_path / "RAN").exists()  # the control: DCP's default planner runs it


# The private torch names parallel.py relies on, where torch has no public one: what a DCP .metadata pickle names
PRIVATE = {("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
           ("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING"),
           ("torch.serialization", "_get_layout")}


def test_private_torch_names_are_still_there(tmp_path):
    """Should a newer torch rename or reshape one of PRIVATE, or pickle .metadata with another name, this says which,
    rather than every sharded checkpoint failing to load; and parallel.py imports no other private torch name."""
    import ast
    import dataclasses
    import enum
    import importlib
    todo = (f"torch {torch.__version__}: update parallel.py (METADATA_CLASSES, MetadataUnpickler, SafeReader, the "
            f"torch versions in its docstring) and PRIVATE in tests/test_parallel.py")

    def private(module, name):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name} is gone; {todo}"
        return getattr(importlib.import_module(module), name)
    info = private("torch.distributed.checkpoint.filesystem", "_StorageInfo")
    assert dataclasses.is_dataclass(info) and {"relative_path", "offset", "length"} <= \
        {f.name for f in dataclasses.fields(info)}, f"_StorageInfo lost relative_path, offset or length; {todo}"
    encoding = private("torch.distributed.checkpoint.metadata", "_MEM_FORMAT_ENCODING")
    assert issubclass(encoding, enum.Enum) and set(encoding.__members__) == {
        "TORCH_CONTIGUOUS_FORMAT", "TORCH_CHANNELS_LAST", "TORCH_PRESERVE_FORMAT"}, \
        f"_MEM_FORMAT_ENCODING has other members {sorted(encoding.__members__)}; {todo}"
    get_layout = private("torch.serialization", "_get_layout")
    import parallel  # only now: an ImportError would say less
    assert get_layout("torch.sparse_coo") is torch.sparse_coo is parallel.LAYOUTS["torch.sparse_coo"], todo

    # what DCP writes names exactly these, the public metadata classes and dtypes (plain pickle: our own file)
    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            named.add((module, name))
            return super().find_class(module, name)
    named = set()
    small_sharded(tmp_path / "ckpt_sharded")
    with open(tmp_path / "ckpt_sharded" / ".metadata", "rb") as f:
        Recorder(f).load()
    admitted = set(parallel.METADATA_CLASSES) | PRIVATE | {("torch", "float32")}
    assert named <= admitted, f".metadata now names {sorted(named - admitted)}; {todo}"
    assert PRIVATE <= named, f".metadata no longer names {sorted(PRIVATE - named)}; {todo}"

    with open(os.path.join(ROOT, "parallel.py")) as f:
        tree = ast.parse(f.read())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("torch") for alias in node.names}
    private_imports = {(m, n) for m, n in imported if any(part.startswith("_") for part in m.split(".") + [n])}
    assert private_imports <= PRIVATE, f"parallel.py imports {sorted(private_imports - PRIVATE)}: add to PRIVATE"


def test_hostile_sharded_checkpoint_refused_by_train_py_resume(fsdp_run, tmp_path, data_dir):
    out = tmp_path / "run"
    shutil.copytree(fsdp_run, out)
    os.remove(out / "ckpt.pt")  # the sharded folder is what resume reads (it would at equal steps anyway)
    hostile_metadata(out / "ckpt_sharded", tmp_path / "RAN")
    before = snapshot(out / "ckpt_sharded")
    r = train_here(out, data_dir, *QWEN, "--max_iters=10", "--init_from=resume", check=False)
    assert_one_line_error(r, "holds more than DCP's metadata", "GLOBAL")
    assert not (tmp_path / "RAN").exists()
    assert snapshot(out / "ckpt_sharded") == before


def test_crash_while_saving_shards_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A disk that fills up in the middle of the shards: OSError, the previous folder intact and loadable. A kill
    between save_sharded's two renames (the previous folder moved to .old, the new one not yet in place): the
    next train.py puts the previous one back."""
    from parallel import load_checkpoint
    from run_dir import claim_out_dir
    folder = tmp_path / "ckpt_sharded"
    small_sharded(folder, step=1)
    before = snapshot(folder)
    real_save = torch.save

    def dies_halfway(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="No space left on device"):
        small_sharded(folder, step=2)
    monkeypatch.undo()
    assert snapshot(folder) == before
    assert load_checkpoint(str(folder))[1]["step"] == 1

    os.rename(folder, str(folder) + ".old")  # as a kill between the renames leaves it (with a complete .tmp or not)
    lock = claim_out_dir(str(tmp_path), resume=True, overwrite=False)
    lock.close()
    assert sorted(os.listdir(tmp_path)) == ["ckpt_sharded", "train.lock"]
    assert snapshot(folder) == before


def test_the_later_checkpoint_is_read(tmp_path):
    """ckpt.pt and ckpt_sharded/ side by side: the later step wins; at equal steps, the sharded one for resuming
    (an FSDP run's ckpt.pt holds weights only), ckpt.pt for the weights alone (measure.py, eval.py, sample.py)."""
    from checkpoint import latest_checkpoint, save_checkpoint
    out = tmp_path
    assert latest_checkpoint(str(out)) == str(out / "ckpt.pt")
    small_sharded(out / "ckpt_sharded", step=4)
    assert latest_checkpoint(str(out)) == latest_checkpoint(str(out), training=False) == str(out / "ckpt_sharded")
    for step, training, weights in ((3, "ckpt_sharded", "ckpt_sharded"), (4, "ckpt_sharded", "ckpt.pt"),
                                    (5, "ckpt.pt", "ckpt.pt")):
        save_checkpoint({"step": step}, str(out / "ckpt.pt"))
        assert latest_checkpoint(str(out)) == str(out / training), step
        assert latest_checkpoint(str(out), training=False) == str(out / weights), step


def test_new_run_never_replaces_a_sharded_checkpoint(tmp_path, data_dir):
    out = tmp_path / "run"
    small_sharded(out / "ckpt_sharded")
    before = snapshot(out / "ckpt_sharded")
    r = train_here(out, data_dir, "--max_iters=2", check=False)
    assert_one_line_error(r, "holds another run's checkpoint (ckpt_sharded)", "--overwrite=True")
    assert snapshot(out / "ckpt_sharded") == before
    train_here(out, data_dir, "--max_iters=2", "--overwrite=True")
    assert not (out / "ckpt_sharded").exists() and (out / "ckpt.pt").is_file()


@pytest.mark.parametrize("args, needle", [(["--parallel=fsdp", "--dtype=float16"], "sharded loss scaler"),
                                          (["--parallel=zero3"], "--parallel='zero3': must be one of 'ddp', 'fsdp'")])
def test_bad_parallel_settings_are_one_line(tmp_path, data_dir, args, needle):
    r = train_here(tmp_path / "bad", data_dir, "--max_iters=2", *args, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and needle in r.stderr
    assert not (tmp_path / "bad").exists()


def test_qwen3_4b_and_8b_configs_resolve_to_the_paper_recipe_under_fsdp(capsys, monkeypatch):
    """The configs past Table 2: the official Qwen3 settings (as config/midtrain_qwen3_1_7b*.py), FSDP with
    activation checkpointing; on 2 nodes of 8 GPUs each process takes 2 of the step's 32 micro-batches."""
    import runpy
    from test_configs import resolve
    base = resolve(os.path.join(ROOT, "config", "midtrain_qwen3_1_7b_disp.py"), capsys=capsys)
    for size in ("4b", "8b"):
        for method in ("", "_disp"):
            c = resolve(os.path.join(ROOT, "config", f"midtrain_qwen3_{size}{method}.py"), capsys=capsys)
            assert c["init_from"] == f"Qwen/Qwen3-{size.upper()}"
            assert c["out_dir"] == f"out/midtrain_qwen3_{size}{method}"
            assert (c["parallel"], c["activation_checkpoint"]) == ("fsdp", True)
            # lm-eval during training needs the whole model in one process: FSDP runs evaluate at the end only
            assert (c["lm_eval_interval"], c["lm_eval_at_start"]) == (0, False)
            same = {k for k in base if k not in ("init_from", "out_dir", "parallel", "activation_checkpoint",
                                                 "lm_eval_interval", "lm_eval_at_start")}
            if method:
                assert {k: c[k] for k in same} == {k: base[k] for k in same}
            else:
                assert c["reg"] == "none" and c["max_iters"] == 1526 and c["reg_clamp"] == 0.25
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "16")):  # as torchrun sets them
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "argv", ["train.py", os.path.join(ROOT, "config", "midtrain_qwen3_8b_disp.py"),
                                      "--dry_run=True", "--device=cpu"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
    assert e.value.code == 0
    assert "| 16 process(es), 2 micro-step(s) each | FSDP" in capsys.readouterr().out
