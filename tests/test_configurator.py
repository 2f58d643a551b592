"""configurator.py: config files, --key=value / --key value overrides, type checks, one-line errors.

python -m pytest -q tests/test_configurator.py
"""
import subprocess
import sys
import textwrap

import pytest

from configurator import configure

DEFAULTS = dict(batch_size=12, learning_rate=6e-4, compile=True, dataset="pydocs", reg_max_tokens=None,
                reg_loc="all", betas=[0.9, 0.95])


def run(argv, types=None):
    ns = dict(DEFAULTS)
    config = configure(ns, argv=argv, types=types)
    return ns, config


def test_overrides_both_forms_and_literal_parsing():
    ns, config = run(["--batch_size=4", "--learning_rate", "1e-3", "--compile=False", "--dataset=wikitext",
                      "--reg_max_tokens=256"])
    assert ns["batch_size"] == 4 and ns["learning_rate"] == 1e-3 and ns["compile"] is False
    assert ns["dataset"] == "wikitext" and ns["reg_max_tokens"] == 256
    assert config == {k: ns[k] for k in DEFAULTS}


def test_int_is_accepted_for_float_and_becomes_float():
    ns, _ = run(["--learning_rate=1"])
    assert ns["learning_rate"] == 1.0 and isinstance(ns["learning_rate"], float)


def test_widened_types():
    ns, _ = run(["--reg_loc=[1, 2, 3]"], types={"reg_loc": (str, list)})
    assert ns["reg_loc"] == [1, 2, 3]


def test_config_file_then_overrides(tmp_path):
    cfg = tmp_path / "exp.py"
    cfg.write_text(textwrap.dedent("""
        import math          # modules are not keys
        batch_size = 2 * 8   # plain python
        learning_rate = 3e-4
    """))
    ns, _ = run([str(cfg), "--learning_rate=1e-4"])
    assert ns["batch_size"] == 16 and ns["learning_rate"] == 1e-4


def _cli(tmp_path, *args):
    script = tmp_path / "script.py"
    script.write_text("batch_size = 12\nlearning_rate = 6e-4\nfrom configurator import configure\n"
                      "configure(globals())\nopen('touched', 'w').write('x')\n")
    import os
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env)


@pytest.mark.parametrize("args, needle", [
    (["--batch_sise=3"], "unknown config key 'batch_sise' (did you mean: batch_size?)"),
    (["--batch_size=abc"], "--batch_size expects int"),
    (["--batch_size=1.5"], "--batch_size expects int"),
    (["missing_config.py"], "config file 'missing_config.py' not found"),
    (["--batch_size"], "has no value"),
])
def test_errors_are_one_line_exit_2_and_nothing_runs(tmp_path, args, needle):
    r = _cli(tmp_path, *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not (tmp_path / "touched").exists()


def test_unknown_key_in_config_file(tmp_path):
    (tmp_path / "bad.py").write_text("lerning_rate = 1e-3\n")
    r = _cli(tmp_path, "bad.py")
    assert r.returncode == 2 and "unknown config key 'lerning_rate'" in r.stderr
    assert "learning_rate" in r.stderr


def test_keys_are_the_snapshot_and_never_constants(tmp_path):
    """Names defined after configure() (or after the CONFIG_KEYS snapshot) and ALL_CAPS constants are not keys."""
    script = tmp_path / "script.py"
    script.write_text("NUM_BINS = 128\nbatch_size = 12\nfrom configurator import config_keys, configure\n"
                      "CONFIG_KEYS = config_keys(globals())\nnorm_floor = 1e-3\n"
                      "configure(globals(), keys=CONFIG_KEYS)\nprint('ok', batch_size)\n")
    import os
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    run_script = lambda *a: subprocess.run([sys.executable, str(script), *a], cwd=tmp_path, capture_output=True,
                                           text=True, env=env)
    assert run_script("--batch_size=3").stdout.strip() == "ok 3"
    for key in ("NUM_BINS", "norm_floor"):
        r = run_script(f"--{key}=0")
        assert r.returncode == 2 and f"unknown config key '{key}'" in r.stderr, r.stderr
    help_text = run_script("--help").stdout
    assert "--batch_size=12" in help_text and "NUM_BINS" not in help_text and "norm_floor" not in help_text


def test_annotations_are_the_types():
    ns = {"__annotations__": {"mlp_hidden": int | None, "reg_loc": str | list}, "mlp_hidden": None,
          "reg_loc": "all", "anything": None}
    configure(ns, argv=["--mlp_hidden=64", "--reg_loc=[1, 2]", "--anything=0.5"])
    assert ns["mlp_hidden"] == 64 and ns["reg_loc"] == [1, 2] and ns["anything"] == 0.5
    configure(ns, argv=["--mlp_hidden=None"])
    assert ns["mlp_hidden"] is None
    with pytest.raises(SystemExit) as e:
        configure(ns, argv=["--mlp_hidden=wide"])
    assert e.value.code == 2


GIVEN_DEFAULTS = dict(n_layer=6, n_head=6, n_embd=384, max_iters=1000, learning_rate=0.1, dropout=0.0, seed=1,
                      beta1=0.9, beta2=0.95, batch_size=12)


def test_given_is_what_the_file_and_its_bases_assign(tmp_path, monkeypatch):
    """given holds the keys the config file (and the bases it star-imports, through a chain) or the command line
    set, whatever the value (a default's own value too), and never a default the file only read or a variable of
    a comprehension or a function of the file; a function that writes a global sets it."""
    pkg = tmp_path / "givenpkg"  # a package name no other test imports: modules are cached per process
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "grand.py").write_text("n_head = 6  # the default's value: assigned all the same\n")
    (pkg / "base.py").write_text("from givenpkg.grand import *\nimport math\nbeta1, beta2 = 0.8, 0.9\n")
    (tmp_path / "exp.py").write_text(textwrap.dedent("""
        from givenpkg.base import *
        max_iters = 2 * max_iters            # reads a default, assigns another
        learning_rate = [n for n in range(3)][1] * 0.5 * n_layer / 6   # reads n_layer only; n is not a key
        def set_dropout():
            global dropout
            dropout = 0.2
        set_dropout()
        if False:
            n_embd = 1
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    ns, given = dict(GIVEN_DEFAULTS), set()
    configure(ns, argv=[str(tmp_path / "exp.py"), "--seed=1"], given=given)
    assert given == {"n_head", "beta1", "beta2", "max_iters", "learning_rate", "dropout", "seed"}
    assert (ns["max_iters"], ns["learning_rate"], ns["dropout"], ns["beta1"], ns["n_layer"]) == (2000, 0.5, 0.2, 0.8, 6)
    given = set()
    configure(dict(GIVEN_DEFAULTS), argv=[], given=given)
    assert given == set()


def test_a_key_only_a_file_reads_is_not_checked_but_one_it_assigns_is(tmp_path):
    (tmp_path / "ok.py").write_text("n_embd = n_head * 64\nfor seed in (7,):\n    pass\n")
    ns, given = dict(GIVEN_DEFAULTS), set()
    configure(ns, argv=[str(tmp_path / "ok.py")], given=given)
    assert given == {"n_embd", "seed"} and ns["seed"] == 7 and ns["n_embd"] == 384
    (tmp_path / "bad.py").write_text("x = n_layer\n")
    with pytest.raises(SystemExit) as e:
        configure(dict(GIVEN_DEFAULTS), argv=[str(tmp_path / "bad.py")])
    assert e.value.code == 2


def refusal(ns, argv, capsys):
    """configure() expecting a refused value: exit 2 -> its one stderr line."""
    with pytest.raises(SystemExit) as e:
        configure(ns, argv=argv)
    assert e.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    return lines[0]


def test_range_bounds_included_and_excluded_and_each_number_of_a_list(capsys):
    from configurator import Annotated, Range
    ns = {"__annotations__": {"n": Range(min=1), "p": Range(min=0, below=1), "tau": Range(above=0),
                              "cap": Annotated[int | None, Range(min=1, max=8)], "seeds": Annotated[int | list,
                                                                                                   Range(min=0)]},
          "n": 8, "p": 0.0, "tau": 1.0, "cap": None, "seeds": [1, 2]}
    config = configure(ns, argv=["--n=1", "--p=0", "--tau=1e-9", "--cap=8", "--seeds=0,5"])
    assert config == {"n": 1, "p": 0.0, "tau": 1e-9, "cap": 8, "seeds": [0, 5]}
    assert refusal(ns, ["--n=0"], capsys) == "error: --n=0: must be >= 1"
    assert refusal(ns, ["--p=1"], capsys) == "error: --p=1.0: must be >= 0 and < 1"
    assert refusal(ns, ["--tau=0"], capsys) == "error: --tau=0.0: must be > 0"
    assert refusal(ns, ["--tau=nan"], capsys) == "error: --tau expects float, got 'nan' (str)"  # a word: its type
    assert refusal(ns, ["--cap=9"], capsys) == "error: --cap=9: must be >= 1 and <= 8 (or None)"
    assert refusal(ns, ["--seeds=1,-2"], capsys) == "error: --seeds=[1, -2]: -2 must be >= 0"
    assert refusal(ns, ["--seeds=-3"], capsys) == "error: --seeds=-3: must be >= 0 (or a list)"


def test_choice_literal_from_a_module_from_a_global_and_comma_lists(capsys):
    from configurator import Annotated, Choice
    ns = {"__annotations__": {"dtype": Choice("float32", "bfloat16"),
                              "reg": Choice("none", names_in="losses.REGULARIZERS"),
                              "loc": Annotated[str | list, Choice(names_in="LOCS")],
                              "regs": Annotated[str | list, Choice(names_in="losses.REGULARIZERS", many=True)],
                              "batch": Annotated[int | str, Choice("auto")]},
          "LOCS": ("all", "last"), "dtype": "float32", "reg": "none", "loc": "all", "regs": "dispersion",
          "batch": "auto"}
    config = configure(ns, argv=["--dtype=bfloat16", "--reg=dispersion", "--loc=[0, 3]", "--regs=dispersion,l2_repel",
                                 "--batch=4"])
    assert (config["reg"], config["loc"], config["regs"], config["batch"]) == ("dispersion", [0, 3],
                                                                               "dispersion,l2_repel", 4)
    assert refusal(ns, ["--dtype=float8"], capsys) == \
        "error: --dtype='float8': must be one of 'float32', 'bfloat16' (did you mean 'float32'?)"
    assert refusal(ns, ["--reg=dispersoin"], capsys).startswith(
        "error: --reg='dispersoin': must be one of 'none', 'dispersion', ")
    assert refusal(ns, ["--loc=middle"], capsys) == "error: --loc='middle': must be one of 'all', 'last' (or a list)"
    assert refusal(ns, ["--regs=dispersion,nope"], capsys).startswith(
        "error: --regs='dispersion,nope': 'nope' must be one of 'dispersion', ")
    assert refusal(ns, ["--regs=['nope']"], capsys).startswith("error: --regs=['nope']: 'nope' must be one of ")
    assert refusal(ns, ["--batch=big"], capsys) == "error: --batch='big': must be 'auto' (or int)"


def test_a_bad_default_is_refused_too_and_types_still_come_first(capsys):
    from configurator import Range
    assert refusal({"__annotations__": {"n": Range(min=1)}, "n": 0}, [], capsys) == "error: --n=0: must be >= 1"
    ns = {"__annotations__": {"n": Range(min=1)}, "n": 4}
    assert refusal(ns, ["--n=1.5"], capsys) == "error: --n expects int, got 1.5 (float)"


def test_help_shows_default_type_and_allowed_values(capsys):
    from configurator import Annotated, Choice, Device, Range
    ns = {"__annotations__": {"n": Range(min=1), "limit": Annotated[int | float | None, Range(min=0)],
                              "dtype": Choice("auto", "float32"), "device": Device()},
          "n": 8, "limit": None, "dtype": "auto", "device": "auto", "name": "x"}
    with pytest.raises(SystemExit) as e:
        configure(ns, argv=["--help"])
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["--n=8", "--limit=None", "--dtype='auto'", "--device='auto'",
                                                   "--name='x'"]
    assert lines[0].endswith("int, >= 1") and lines[1].endswith("int or float or None, >= 0")
    assert lines[2].endswith("str, one of 'auto', 'float32'") and "'cuda:N'" in lines[3] and lines[4].endswith("str")
