"""Experiment tracking: wandb is checked before anything is written and a resumed run continues its wandb run;
training.png is drawn from metrics.jsonl at every eval. train.py runs in this process, with `wandb` in sys.modules
standing for the package (a stand-in, or None for one not installed)."""
import json
import sys
import types

import numpy as np
import pytest

from test_train import data_dir, metrics, train_here  # noqa: F401 (data_dir: a fixture)


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in `wandb` module that records its init and log calls (the real one needs a login and the network)
    -> the list of calls."""
    calls = []
    wandb = types.ModuleType("wandb")
    wandb.init = lambda **kw: calls.append({"call": "init", **{k: v for k, v in kw.items() if k != "config"}})
    wandb.log = lambda record, step=None: calls.append({"call": "log", "step": step})
    wandb.finish = lambda: calls.append({"call": "finish"})
    wandb.util = types.SimpleNamespace(generate_id=lambda: "fakeid01")
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    return calls


def test_missing_wandb_is_refused_before_anything_is_written(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails as without the package, installed or not
    out = tmp_path / "run"
    r = train_here(out, data_dir, "--max_iters=2", "--wandb_log=True", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("error: wandb_log=True but the wandb package")
    assert not out.exists()


def test_resumed_run_continues_its_wandb_run_and_draws_training_png(tmp_path, data_dir, fake_wandb):
    calls = fake_wandb
    out = tmp_path / "run"
    train_here(out, data_dir, "--max_iters=4", "--eval_interval=2", "--wandb_log=True", draw=("training.png",))
    assert json.load(open(out / "run.json"))["config"]["wandb_run_id"] == "fakeid01"
    r = train_here(out, data_dir, "--max_iters=6", "--eval_interval=2", "--wandb_log=True", "--init_from=resume",
                   draw=("training.png",))
    assert "wandb_run_id" not in r.stdout  # not reported as a change of the config on resume
    inits = [c for c in calls if c["call"] == "init"]
    assert [c["id"] for c in inits] == ["fakeid01", "fakeid01"]
    assert all(c["resume"] == "allow" for c in inits)
    logged = [c["step"] for c in calls if c["call"] == "log"]
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


def test_figure7_grid_has_a_row_per_run_and_a_column_per_step(tmp_path, monkeypatch):
    import figures
    from figures import write_figures
    save_figure = figures.save_figure  # heatmap_grid.png rendered; the other figures are drawn, not rendered
    monkeypatch.setattr(figures, "save_figure",
                        lambda fig, path: save_figure(fig, path) if path.endswith("heatmap_grid.png") else fig)
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
