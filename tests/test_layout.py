"""The layout of the top-level modules: every import points down. The import graph is read from the sources with
ast (imports inside functions count: a lazy import is an import), printed, and must have no circle; model.py,
losses.py, configurator.py and condensation.py import no module of ours. The names that moved when checkpoint.py
and measure.py were split by concern either work from their old place or fail with a message naming the new one.

    OMP_NUM_THREADS=1 python -m pytest -q -s tests/test_layout.py     # -s prints the graph
"""
import ast
import glob
import importlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, '*.py')))
FOUNDATIONS = ['model', 'losses', 'configurator']  # DESIGN.md's Layout: these import nothing of ours
FOUNDATIONS += ['condensation']  # the measures' definitions: train.py and eval.py reach them without measure.py's
                                 # loaders


def imported(source, ours=OURS):
    """The modules of ours that a source imports, anywhere in it: top-level or inside functions, by import
    statement or by importlib.import_module / __import__ with a literal name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split('.')[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                ast.unparse(node.func) in ('importlib.import_module', 'import_module', '__import__'):
            found.add(str(node.args[0].value).split('.')[0])
    return found & set(ours)


def import_graph():
    graph = {}
    for name in OURS:
        with open(os.path.join(ROOT, f'{name}.py')) as f:
            graph[name] = sorted(imported(f.read()))
    return graph


def cycles(graph):
    """One circle per strongly connected component that has one (Tarjan's algorithm), each as a path
    [a, b, ..., a]."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    found = []
    for component in components:
        start = min(component)
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        path, seen = [start], {start}  # walk inside the component until a module repeats
        while True:
            nxt = min(w for w in graph[path[-1]] if w in component)
            if nxt in seen:
                found.append(path[path.index(nxt):] + [nxt])
                break
            path.append(nxt)
            seen.add(nxt)
    return found


def show(graph):
    return '\n'.join(f"  {m:<14} -> {', '.join(graph[m]) or '(nothing of ours)'}" for m in sorted(graph))


GRAPH = import_graph()


def test_no_import_circles():
    print(f"\nimport graph of the top-level modules (lazy imports included):\n{show(GRAPH)}")
    found = cycles(GRAPH)
    assert not found, "import circles: " + '; '.join(' -> '.join(c) for c in found) + f"\n{show(GRAPH)}"


@pytest.mark.parametrize('module', FOUNDATIONS)
def test_foundations_import_nothing_of_ours(module):
    assert GRAPH[module] == [], f"{module}.py imports {', '.join(GRAPH[module])}\n{show(GRAPH)}"


def test_the_graph_reader_can_fail():
    """The two halves of the check find what they are meant to: imports inside functions and by name, and a
    circle through three modules next to a module importing itself."""
    source = ("import os, model\nfrom losses_tiled import x\ndef f():\n    from checkpoint import y\n"
              "    import importlib\n    importlib.import_module('hf_io')\n    __import__('parallel.sub')\n"
              "from . import train\n")
    assert imported(source) == {'model', 'losses_tiled', 'checkpoint', 'hf_io', 'parallel'}
    assert sorted(cycles({'a': ['b'], 'b': ['c'], 'c': ['a', 'd'], 'd': [], 'e': ['e']})) == [['a', 'b', 'c', 'a'],
                                                                                       ['e', 'e']]
    assert cycles({'a': ['b'], 'b': []}) == []


# -----------------------------------------------------------------------------
# old spellings: each works, or its error names the new home (and the new home has the name)

def moved(module):
    return sorted(importlib.import_module(module).MOVED.items())


@pytest.mark.parametrize('module, name, home', [(m, n, h) for m in ('model', 'checkpoint') for n, h in moved(m)])
def test_a_moved_name_says_where_it_is(module, name, home):
    message = rf"{module}\.{name} moved to {home}\.py: from {home} import {name}"
    with pytest.raises(ImportError, match=message):
        exec(f"from {module} import {name}", {})
    with pytest.raises(ImportError, match=message):
        getattr(importlib.import_module(module), name)
    assert hasattr(importlib.import_module(home), name)


def test_nanogpt_spellings_on_the_model_name_hf_io():
    import model as M
    gpt = M.GPT(M.GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(AttributeError, match=r"model\.to_hf\(\) moved to hf_io\.py: from hf_io import to_hf; "
                                             r"to_hf\(model\)"):
        gpt.to_hf()
    for cls in (M.GPT, M.Qwen3):
        with pytest.raises(AttributeError, match=rf"{cls.__name__}\.from_pretrained moved to hf_io\.py: from hf_io "
                                                 rf"import from_pretrained; from_pretrained\('gpt2', "
                                                 rf"model_class={cls.__name__}\)"):
            cls.from_pretrained('gpt2')
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):  # other names: Python's usual error
        M.nothing


def test_measure_keeps_the_definitions_that_moved_to_condensation():
    """`from measure import mean_cossim` and the rest still work, and give condensation.py's own objects (a
    re-export, not a copy that could drift); measure.py defines none of them itself."""
    import condensation
    import measure
    names = ['NUM_BINS', 'NORM_FLOOR', 'MEASURES', 'ALL_MEASURES', 'normalize', 'mean_cossim', 'cosine_matrices',
             'offdiag_cossim', 'gram', 'eigenvalues', 'effective_rank', 'isoscore', 'pca_variance_share',
             'window_mean_cossim', 'parse_measures', 'geometry', 'rank_correlations', 'layer_trend', 'exact_float32',
             'measure_run']
    for name in names:
        assert getattr(measure, name) is getattr(condensation, name), name
    with open(os.path.join(ROOT, 'measure.py')) as f:
        defined = {n.name for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef)}
    assert not defined & set(names), sorted(defined & set(names))


def test_measure_keeps_the_record_functions_that_moved_to_records():
    """`measure.write_outputs`, `measure.load_measured` and the rest are records.py's own objects; measure.py
    defines none of them itself."""
    import measure
    import records
    names = ['csv_row', 'write_outputs', 'load_measured', 'run_problem', 'merge', 'settings', 'modified']
    for name in names:
        assert getattr(measure, name) is getattr(records, name), name
    with open(os.path.join(ROOT, 'measure.py')) as f:
        defined = {n.name for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef)}
    assert not defined & set(names), sorted(defined & set(names))


def test_checkpoint_keeps_atomic_write_and_names_parallel_for_sharded_folders(tmp_path):
    import atomic
    import checkpoint
    from checkpoint import atomic_write, check_output
    assert atomic_write is atomic.atomic_write and check_output is atomic.check_output
    folder = tmp_path / 'run' / 'ckpt_sharded'  # an FSDP run stopped before its end: shards only
    folder.mkdir(parents=True)
    (folder / 'train_state.pt').write_bytes(b'')
    for path in (folder, tmp_path / 'run'):
        with pytest.raises(ValueError, match=r"is a sharded checkpoint .*parallel\.load_checkpoint reads it"):
            checkpoint.load_checkpoint(str(path))


def test_writing_files_needs_no_torch():
    """figures.py, tables.py, data.py and records.py write through atomic.py without importing torch, and records.py
    without matplotlib either until it draws (a fresh process: this one has torch already)."""
    code = ("import sys, records; print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules)); "
            "import atomic, figures, tables, data; print(sorted(m for m in ('torch', 'model') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ['[]', '[]'], r.stdout + r.stderr
