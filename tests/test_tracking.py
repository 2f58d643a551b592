"""Experiment tracking: wandb is checked before anything is written and a resumed run continues its wandb run;
training.png is drawn from metrics.jsonl at every eval."""
import json
import os
import textwrap

import numpy as np
import pytest

from test_train import data_dir, metrics, train  # noqa: F401 (data_dir: a fixture)


def env_with_path(*dirs):
    return {"PYTHONPATH": os.pathsep.join([*dirs, os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def fake_wandb(tmp_path):
    """A stand-in `wandb` package that records init and log calls to a JSON-lines file (the real one needs a login
    and the network)."""
    pkg = tmp_path / "fake" / "wandb"
    pkg.mkdir(parents=True)
    calls = tmp_path / "wandb_calls.jsonl"
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        import json, types
        def _record(kind, **kw):
            with open({str(calls)!r}, 'a') as f:
                f.write(json.dumps({{'call': kind, **kw}}, default=str) + '\\n')
        def init(**kw): _record('init', **{{k: v for k, v in kw.items() if k != 'config'}})
        def log(record, step=None): _record('log', step=step)
        def finish(): _record('finish')
        util = types.SimpleNamespace(generate_id=lambda: 'fakeid01')
    """))
    return str(pkg.parent), calls


def run_train(out_dir, data_dir, *args, extra_env=None):
    old = {k: os.environ.get(k) for k in (extra_env or {})}
    os.environ.update(extra_env or {})
    try:
        return train(out_dir, data_dir, *args, check=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_missing_wandb_is_refused_before_anything_is_written(tmp_path, data_dir):
    block = tmp_path / "block"  # hides an installed wandb, so the test means the same everywhere
    block.mkdir()
    (block / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys
        class _NoWandb:
            def find_spec(self, name, path=None, target=None):
                if name == 'wandb':
                    raise ModuleNotFoundError(name)
        sys.meta_path.insert(0, _NoWandb())
    """))
    out = tmp_path / "run"
    r = run_train(out, data_dir, "--max_iters=2", "--wandb_log=True", extra_env=env_with_path(str(block)))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: wandb_log=True but the wandb package")
    assert not out.exists()


def test_resumed_run_continues_its_wandb_run_and_draws_training_png(tmp_path, data_dir, fake_wandb):
    path, calls = fake_wandb
    out = tmp_path / "run"
    env = env_with_path(path)
    r = run_train(out, data_dir, "--max_iters=4", "--eval_interval=2", "--wandb_log=True", extra_env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.load(open(out / "run.json"))["config"]["wandb_run_id"] == "fakeid01"
    r = run_train(out, data_dir, "--max_iters=6", "--eval_interval=2", "--wandb_log=True", "--init_from=resume",
                  extra_env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wandb_run_id" not in r.stdout  # not reported as a change of the config on resume
    inits = [json.loads(line) for line in open(calls) if '"init"' in line]
    assert [c["id"] for c in inits] == ["fakeid01", "fakeid01"]
    assert all(c["resume"] == "allow" for c in inits)
    logged = [json.loads(line)["step"] for line in open(calls) if '"log"' in line]
    assert logged[-1] == 6 and 5 in logged
    # training.png: redrawn at each eval from metrics.jsonl, here over both halves of the run
    assert (out / "training.png").stat().st_size > 10_000
    assert max(m["step"] for m in metrics(out) if "mean_cossim" in m) == 6


def test_training_figure_shows_what_metrics_jsonl_holds(tmp_path):
    from figures import plot_training, read_metrics
    cos = [[0.1, 0.5, 0.9], [0.2, 0.4, 0.6]]
    lines = [{"step": 1, "train_loss": 3.0, "lr": 1e-3, "grad_norm": 2.0},
             {"step": 2, "train_loss": 2.5, "lr": 2e-3, "grad_norm": 1.5, "reg_loss": -0.3},
             {"step": 2, "val_loss": 2.7, "mean_cossim": cos[0]},
             {"step": 4, "train_loss": 2.0, "lr": 1e-3, "reg_loss": -0.4},
             {"step": 4, "val_loss": 2.2, "mean_cossim": cos[1]}]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 5, "train_lo')  # a line cut short
    records = read_metrics(str(tmp_path))
    assert len(records) == len(lines)
    fig = plot_training(records, str(tmp_path / "training.png"))
    assert (tmp_path / "training.png").is_file()
    titled = {ax.get_title(): ax for ax in fig.axes}
    assert {"loss", "regularizer", "learning rate", "grad norm (before clipping)",
            "mean cosine by hidden state"} <= set(titled)
    image = titled["mean cosine by hidden state"].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), np.array(cos).T)  # rows: hidden states; columns: evals
    train_line, val_line = titled["loss"].get_lines()
    assert list(train_line.get_ydata()) == [3.0, 2.5, 2.0] and list(val_line.get_xdata()) == [2, 4]
    with pytest.raises(ValueError):
        plot_training([], str(tmp_path / "empty.png"))


def test_figure7_grid_has_a_row_per_run_and_a_column_per_step(tmp_path):
    from figures import write_figures
    rng = np.random.default_rng(0)
    runs = [{"name": f"{run} step {step}", "source": f"/x/{run}/" + ("ckpt.pt" if step == 40 else f"ckpt_{step:06d}.pt"),
             "step": step, "histograms": rng.random((5, 128)).tolist(), "mean_cossim": list(rng.random(5)),
             "spearman": 0.5, "kendall": 0.4, "n_params": 1, "mean_last_n": list(rng.random(5))}
            for run in ("base", "disp") for step in (0, 20, 40)]
    write_figures(runs, str(tmp_path))
    assert (tmp_path / "heatmap_grid.png").is_file()
    from figures import plot_heatmap_grid
    fig = plot_heatmap_grid(runs, str(tmp_path / "grid.png"))
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [f"{r}, step {s}" for r in ("base", "disp") for s in (0, 20, 40)]
    for ax, run in zip(panels, runs):  # each panel: the run's histograms, one column per hidden state
        np.testing.assert_array_equal(np.asarray(ax.get_images()[0].get_array()), np.array(run["histograms"]).T)
