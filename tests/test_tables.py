"""tables.py's choice of evaluation per run: --select=best against the official runs' selection rule (transcribed
below from KrishnaswamyLab/LM-Dispersion), the base-model row from the step-0 evaluations, --select=final on run
files without a history, and the one-line errors.

python -m pytest -q tests/test_tables.py

Hermetic and fast: run files are JSON written into pytest tmp dirs; tables.py imports neither torch nor lm-eval.
"""
import contextlib
import csv
import io
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import tables
from conftest import assert_one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = list(tables.COLUMNS)[:10]  # the paper's ten accuracy tasks, in the order of the official metric list
PPL = "paloma_wikitext_103"
STEPS = [0, 201, 402, 603, 804, 1000]  # an official run's evaluations: step 0, every max_steps // 5 + 1, the end
METHODS = ["L_train", "L_train + dispersion", "L_train + noisy embedding"]
SEEDS = {"L_train": [1, 2, 3], "L_train + dispersion": [1, 2, 3], "L_train + noisy embedding": [1, 2]}


# --- the official rule, transcribed -------------------------------------------------------------------------------
# A transcription of KrishnaswamyLab/LM-Dispersion, lm_dispersion/midtrain_gpt2_huggingface/plot_results.py (the
# same functions in midtrain_qwen3_huggingface/plot_results.py): _average_scalar_at_step_single_seed,
# best_training_step_per_seed, mean_std_metric_at_per_seed_best and composite_mean_std_at_per_seed_best, on their
# per-seed records {'step': [...], '<task>\n<metric>': {'mean': [...], 'std': [...]}} (scores as fractions).

def official_average(seed_record, step, metric_names):
    """The mean over the metrics at one step, perplexities left out and non-finite values skipped; nan if none."""
    if step not in seed_record["step"]:
        return np.nan
    i = seed_record["step"].index(step)
    values = []
    for name in metric_names:
        if "perplexity" in name:
            continue
        v = float(seed_record[name]["mean"][i])
        if np.isfinite(v):
            values.append(v)
    return float(np.mean(values)) if values else np.nan


def official_best_steps(seed_records, metric_names):
    """Per seed, the step whose average is the greatest: steps in their listed order, a strict '>' against a
    running best that starts at -inf, so the first maximum wins a tie; None for a seed without steps."""
    best_steps = []
    for record in seed_records:
        best_step, best_score = None, -np.inf
        for step in record.get("step") or []:
            v = official_average(record, step, metric_names)
            if np.isfinite(v) and v > best_score:
                best_step, best_score = step, v
        best_steps.append(best_step)
    return best_steps


def official_mean_std(values):
    """Mean and sample std (ddof=1; 0 for one value) of the per-seed values."""
    if not values:
        return np.nan, 0.0
    return float(np.mean(values)), (0.0 if len(values) < 2 else float(np.std(values, ddof=1)))


def official_metric_at_best(seed_records, metric_name, best_steps):
    """One metric's per-seed value (in %) at each seed's best step -> mean, std over seeds."""
    values = []
    for record, step in zip(seed_records, best_steps):
        if step is None or step not in record["step"] or metric_name not in record:
            continue
        v = float(record[metric_name]["mean"][record["step"].index(step)])
        if np.isfinite(v):
            values.append(v * 100.0)
    return official_mean_std(values)


def official_average_at_best(seed_records, metric_names, best_steps):
    """The per-seed average (in %) at each seed's best step -> mean, std over seeds: the table's Average."""
    values = []
    for record, step in zip(seed_records, best_steps):
        if step is None:
            continue
        a = official_average(record, step, metric_names)
        if np.isfinite(a):
            values.append(a * 100.0)
    return official_mean_std(values)

# --- constructed runs ---------------------------------------------------------------------------------------------


def constructed_scores(seed=0):
    """method -> seed -> step -> task -> value. Accuracies are multiples of 1/256, so that a sum over tasks is exact
    and two evaluations with the same values in another order tie exactly. Built in: exact ties between steps
    (one of them at step 0), seeds whose best is step 0, and a perplexity that would pick another step if the
    average counted it."""
    rng = np.random.default_rng(seed)
    base = {s: rng.integers(64, 160, size=10) for s in (1, 2, 3)}  # step 0: the same model under every method
    scores = {}
    for m, method in enumerate(METHODS):
        scores[method] = {}
        for s in SEEDS[method]:
            by_step = {0: base[s]}
            for step in STEPS[1:]:
                by_step[step] = np.clip(base[s] + rng.integers(-12, 12 + 4 * m, size=10), 0, 256)
            if s == 1:  # a tie between two later steps: the same values, permuted
                by_step[804] = rng.permutation(by_step[402])
            if s == 2:  # step 0 is the best, tied by a later step
                for step in STEPS[1:]:
                    by_step[step] = np.minimum(by_step[step], base[s] - 1)
                by_step[603] = base[s][::-1].copy()
            scores[method][s] = {step: {t: v / 256 for t, v in zip(TASKS, values)}
                                 for step, values in by_step.items()}
            for step in STEPS:  # word perplexity: greatest at the last step, which the average must not see
                scores[method][s][step][PPL] = 40.0 - step / 100 + (100.0 if step == 1000 else 0.0)
    return scores


def lm_eval_results(task_values):
    """One evaluation in lm-eval's results format, as eval.json keeps it."""
    return {t: ({"word_perplexity,none": v, "word_perplexity_stderr,none": "N/A", "alias": t} if t == PPL else
                {"acc,none": v, "acc_stderr,none": 0.01, "alias": t}) for t, v in task_values.items()}


def write_runs(tmp_path, scores, history=True):
    """train.py's eval.json per (method, seed): 'results' the final evaluation, 'history' every one in step order."""
    paths = []
    for method, by_seed in scores.items():
        for s, by_step in by_seed.items():
            run = {"label": method, "seed": s, "config": {"seed": s},
                   "results": lm_eval_results(by_step[STEPS[-1]])}
            if history:
                run["history"] = [{"step": step, "results": lm_eval_results(by_step[step])} for step in STEPS]
            path = tmp_path / f"{method.replace(' ', '_').replace('+', 'p')}_s{s}" / "eval.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(run))
            paths.append(str(path))
    return paths


def official_records(scores):
    """The same runs as the official code holds them: method -> per-seed records, steps in step order."""
    names = [f"{PPL}\nword_perplexity,none"] + [f"{t}\nacc,none" for t in TASKS]  # its metric list's order
    records = {}
    for method, by_seed in scores.items():
        records[method] = []
        for by_step in by_seed.values():
            record = {"step": list(STEPS)}
            for name in names:
                task = name.split("\n")[0]
                record[name] = {"mean": [by_step[step][task] for step in STEPS], "std": [0.0] * len(STEPS)}
            records[method].append(record)
    return records, [n for n in names if "perplexity" not in n]


def run_tables(*args):
    return subprocess.run([sys.executable, "tables.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def read_csv(path):
    with open(path) as f:
        return {r["method"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def best_table(tmp_path_factory):
    """tables.py's command line on the constructed runs, default --select: the printed table and its CSV."""
    tmp = tmp_path_factory.mktemp("best")
    scores = constructed_scores()
    paths = write_runs(tmp, scores)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # in-process: a subprocess would import torch again (atomic_write)
        tables.main(paths, table_out=str(tmp / "table2.md"))
    assert stdout.getvalue() == (tmp / "table2.md").read_text()
    return scores, stdout.getvalue(), read_csv(tmp / "table2.csv")

# --- tests --------------------------------------------------------------------------------------------------------


def test_best_evaluation_matches_official(best_table):
    """Per seed, the step tables.py shows is the official rule's, and every column and the average at it agree
    with the official per-seed-best mean and std."""
    scores, printed, rows = best_table
    records, metric_names = official_records(scores)
    for method in METHODS:
        best = official_best_steps(records[method], metric_names)
        assert rows[method]["selection"] == "best"
        assert rows[method]["steps"] == " ".join(f"{s}:{step}" for s, step in zip(SEEDS[method], best))
        for t in TASKS:
            mean, std = official_metric_at_best(records[method], f"{t}\nacc,none", best)
            assert float(rows[method][f"{t}_mean"]) == pytest.approx(mean, abs=1e-9)
            assert float(rows[method][f"{t}_std"]) == pytest.approx(std, abs=1e-9)
        mean, std = official_average_at_best(records[method], metric_names, best)
        assert float(rows[method]["average_mean"]) == pytest.approx(mean, abs=1e-9)
        assert float(rows[method]["average_std"]) == pytest.approx(std, abs=1e-9)
        # the perplexity column at the same step: the perplexity is shown, not selected by
        ppl = [scores[method][s][step][PPL] for s, step in zip(SEEDS[method], best)]
        assert float(rows[method][f"{PPL}_mean"]) == pytest.approx(np.mean(ppl), abs=1e-9)
    # the constructed runs do exercise the rule: ties (a last-maximum rule would differ), step 0 chosen, and a
    # perplexity that, averaged in, would choose the last step
    last_max, zero, with_ppl = 0, 0, 0
    for method in METHODS:
        best = official_best_steps(records[method], metric_names)
        zero += best.count(0)
        for record, step in zip(records[method], best):
            avgs = [official_average(record, s, metric_names) for s in STEPS]
            last_max += STEPS[len(avgs) - 1 - avgs[::-1].index(max(avgs))] != step
            with_ppl += step != 1000
    assert last_max >= 3 and zero >= 3 and with_ppl >= 3
    # the line under the table names the rule and the steps
    note = printed.strip().splitlines()[-1]
    assert note.startswith("Evaluation shown: per seed, the one with the best average") and "--select=best" in note
    best = official_best_steps(records["L_train"], metric_names)
    assert "L_train " + ", ".join(f"{step} (seed {s})" for s, step in zip(SEEDS["L_train"], best)) in note


def test_base_row_from_step_zero(best_table):
    """The paper's first row: the L_train runs' step-0 evaluations, mean ± sample std over seeds (statistics), as
    the first row, ranked and t-tested like the others; no training time."""
    scores, printed, rows = best_table
    base = rows[tables.BASE_ROW]
    assert list(rows)[0] == tables.BASE_ROW and list(rows)[1:] == METHODS
    assert base["seeds"] == "3" and base["selection"] == "step 0" and base["steps"] == "1:0 2:0 3:0"
    assert base["train_hours"] == "nan"
    step0 = [scores["L_train"][s][0] for s in SEEDS["L_train"]]
    for t in TASKS:
        values = [100 * e[t] for e in step0]
        assert float(base[f"{t}_mean"]) == pytest.approx(statistics.mean(values), abs=1e-9)
        assert float(base[f"{t}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-9)
    averages = [statistics.mean(100 * e[t] for t in TASKS) for e in step0]
    assert float(base["average_mean"]) == pytest.approx(statistics.mean(averages), abs=1e-9)
    assert float(base["average_std"]) == pytest.approx(statistics.stdev(averages), abs=1e-9)
    # t-test against the dispersion row (the default reference): scipy on the per-seed averages at the best steps
    records, metric_names = official_records(scores)
    disp = records["L_train + dispersion"]
    disp_avg = [100 * official_average(r, step, metric_names)
                for r, step in zip(disp, official_best_steps(disp, metric_names))]
    assert float(base["p_value"]) == pytest.approx(stats.ttest_ind(averages, disp_avg).pvalue, rel=1e-9)
    # ranked among the rows: per task, by the means as shown, 1 = best, ties sharing the best rank
    shown = np.array([[round(float(rows[m][f"{t}_mean"]), 1) for t in TASKS] for m in rows])
    ranks = np.mean([stats.rankdata(-shown[:, j], method="min") for j in range(10)], axis=0)
    assert float(base["rank"]) == pytest.approx(ranks[0], abs=1e-12)
    line = printed.splitlines()[2]
    assert line.startswith(f"| {tables.BASE_ROW} | 3 | ")
    assert f"'{tables.BASE_ROW}': the step-0 evaluations (before any update) of the 'L_train' runs" in printed


def test_final_on_files_without_history(tmp_path, capsys):
    """Run files without 'history' (older train.py, eval.py --out): --select=final and the default both show the
    final evaluation, as before; the same runs with a history and --select=final give the same mid-trained rows."""
    scores = constructed_scores(seed=1)
    old = write_runs(tmp_path / "old", scores, history=False)
    new = write_runs(tmp_path / "new", scores)
    out = {}
    for name, paths, select in (("old", old, "final"), ("default", old, ""), ("new", new, "final")):
        tables.main(paths, select=select)
        out[name] = capsys.readouterr()
    assert out["old"] == out["default"] and out["old"].err == ""
    assert "Evaluation shown: each run's final one (--select=final)." in out["old"].out
    assert tables.BASE_ROW not in out["old"].out  # no step-0 evaluation: no base-model row
    assert out["new"].out.splitlines()[2].startswith(f"| {tables.BASE_ROW} |")
    runs, rule = tables.select_evaluations([tables.load_run(p) for p in old], "final")
    assert rule == "final" and len(runs) == len(old)
    for r in runs:  # the final results, value for value
        method, s = r["label"], r["seed"]
        assert r["scores"] == {t: ("word_perplexity" if t == PPL else "acc", v)
                               for t, v in scores[method][s][STEPS[-1]].items()}
    # with a history, --select=final: the base row first, then the same runs with the same scores
    runs_new, _ = tables.select_evaluations([tables.load_run(p) for p in new], "final")
    assert [r["label"] for r in runs_new[:3]] == [tables.BASE_ROW] * 3
    assert [(r["label"], r["seed"], r["scores"]) for r in runs_new[3:]] == \
        [(r["label"], r["seed"], r["scores"]) for r in runs]
    # one file without a history among files with one: the default falls back to final, with a warning
    tables.main(new[:-1] + old[-1:])
    got = capsys.readouterr()
    assert got.err == (f"warning: {old[-1]} has no evaluation history: the table shows every run's final "
                       "evaluation (--select=final)\n")
    assert "(--select=final)" in got.out.splitlines()[-1]


def test_select_errors(tmp_path, capsys):
    """--select=best on a file without a history, an unknown --select, a malformed history: one line each, and
    no table written."""
    scores = constructed_scores()
    new = write_runs(tmp_path / "new", {"L_train": scores["L_train"]})
    old = write_runs(tmp_path / "old", {"L_train + dispersion": scores["L_train + dispersion"]}, history=False)
    out = tmp_path / "t.md"
    p = run_tables(*new, *old, "--select=best", f"--table_out={out}")
    assert_one_line_error(p, old[0], "no evaluation history", "--select=final", code=2)
    assert_one_line_error(run_tables(*new, "--select=last"), "--select='last': must be one of '', 'best', 'final'",
                          code=2)
    bad = tmp_path / "bad.json"
    for history in ([], {"0": {}}, [{"step": "0", "results": {"piqa": {"acc,none": 0.5}}}], [{"step": 0}]):
        bad.write_text(json.dumps({"label": "L_train", "seed": 9, "history": history,
                                   "results": {"piqa": {"acc,none": 0.5}}}))
        with pytest.raises(SystemExit) as e:
            tables.main([str(bad)], table_out=str(out))
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.count("\n") == 1 and err.startswith(f"error: {bad}: 'history' is not a list")
    assert not out.exists() and not out.with_suffix(".csv").exists()
