"""
Configuration for every script: module-level defaults, then a config file, then command-line overrides.

    python train.py config/midtrain_gpt2_disp.py --batch_size=8 --reg_coeff 0.5

A script writes its defaults as plain module-level names at the top, annotated where a default alone does not
say what it accepts, and calls configure() right after them:

    batch_size = 8                 # an int: only ints
    mlp_hidden: int | None = None  # the annotation is the type check
    config = configure(globals())

The keys are the names defined before that call (nanoGPT's config_keys snapshot): anything defined later, and
any ALL_CAPS module constant, is never a key. configure() (1) runs the optional config file (plain Python
assignments; it may import its family's base, `from config.midtrain_gpt2 import *`), (2) applies `--key=value`
or `--key value` overrides, parsed as Python literals (a bare word stays a string), (3) type-checks each against
its annotation, else its default's type (an int is fine for a float; a None default without annotation takes
any literal), (4) checks the final values against the allowed values their annotation states, and (5) writes the
result back into the script's globals. Any mistake (unknown key, wrong type, a value not allowed, missing file) is
one line on stderr naming the key and what it allows, exit code 2, before the script has touched data, network
or disk.

Allowed values are stated once, in the annotation, with three small markers (below): a value outside them is the
same one-line error, whatever the script, before any work. A bare marker keeps the default's type; typing.Annotated
adds markers to a type:

    batch_size: Range(min=1) = 8                                     # an int >= 1
    dtype: Choice('auto', 'float32', 'bfloat16', 'float16') = 'auto'
    reg: Choice('none', names_in='losses.REGULARIZERS') = 'none'     # 'none' or a key of that dict
    eval_limit: Annotated[int | float | None, Range(min=0)] = None   # None, or a number >= 0
    device: Device() = 'auto'                                        # auto, cpu, cuda, cuda:N, mps it has

Constraints between keys (one divides another, one needs another) are explicit checks in the script, right after
configure(). `--help` lists every key with its default, type and allowed values, from the same declarations.

A script that must be importable without reading the command line (measure.py, eval.py: train.py imports
their functions) takes the snapshot at the same place, `CONFIG_KEYS = config_keys(globals())`, and configures
later in main() with `configure(globals(), keys=CONFIG_KEYS)`.
"""

import ast
import difflib
import importlib
import os
import sys
import types as pytypes
import typing
from typing import Annotated  # the scripts import it from here, with the markers

CONFIG_TYPES = (int, float, bool, str, type(None), list, tuple)


def die(msg, code=1):
    """Print a one-line error and exit. Scripts use it for every user-facing failure."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def one_line(e):
    """An exception as one line: its message's first line, after the type name unless it is one of the kinds our
    code raises with a full sentence (ValueError, FileNotFoundError)."""
    lines = str(e).strip().splitlines()
    first = lines[0].strip() if lines else ''
    if not first:
        return type(e).__name__
    return first if type(e) in (ValueError, FileNotFoundError) else f"{type(e).__name__}: {first}"


# -----------------------------------------------------------------------------
# allowed values: markers for the annotations of the defaults block. Each says, for one value, what is wrong with
# it (None when it is fine), and, for --help, what it allows.

def _items(value):
    """The scalars a marker checks: the value itself, or each element of a list or tuple."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Range:
    """Numbers within bounds: min/max included, above/below excluded. Checks an int or float value, and each number
    of a list; None and strings pass (a type of their own says what they may be)."""

    def __init__(self, min=None, max=None, *, above=None, below=None):
        self.bounds = [(op, b) for op, b in (('>=', min), ('<=', max), ('>', above), ('<', below)) if b is not None]

    def describe(self, namespace=None):
        return ' and '.join(f"{op} {b}" for op, b in self.bounds)

    def refuse(self, value, namespace):
        ok = {'>=': lambda v, b: v >= b, '<=': lambda v, b: v <= b, '>': lambda v, b: v > b, '<': lambda v, b: v < b}
        for v in _items(value):
            if _is_number(v) and not all(ok[op](v, b) for op, b in self.bounds):
                return f"{'' if v is value else f'{v!r} '}must be {self.describe()}"
        return None


class Choice:
    """One of the given values. names_in='module.NAME' (or 'NAME', a global of the script) adds the keys of that
    dict (or items of that tuple), read when checked: a list kept where its code is (losses.REGULARIZERS) is not
    copied into the script. Checks values of the choices' types only (the str of a `str | list` key, each str of a
    list); many=True also reads a str as a comma-separated list of choices."""

    def __init__(self, *values, names_in=None, many=False):
        self.given, self.names_in, self.many = values, names_in, many

    def values(self, namespace):
        if not self.names_in:
            return list(self.given)
        *module, name = self.names_in.split('.')
        if module:
            owner = namespace.get(module[0]) or importlib.import_module('.'.join(module))
            names = getattr(owner, name)
        else:
            names = namespace[name]
        return [*self.given, *names]

    def describe(self, namespace):
        listed = ', '.join(map(repr, self.values(namespace)))
        return f"a comma list of {listed}" if self.many else f"one of {listed}"

    def refuse(self, value, namespace):
        values = self.values(namespace)
        kinds = {type(v) for v in values}
        items = _items(value)
        if self.many and isinstance(value, str):
            items = [v.strip() for v in value.split(',') if v.strip()]
        for v in items:
            if type(v) in kinds and v not in values:
                words = [c for c in values if isinstance(c, str)]
                close = difflib.get_close_matches(v, words, n=1) if isinstance(v, str) else []
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = repr(values[0]) if len(values) == 1 else f"one of {', '.join(map(repr, values))}"
                return f"{'' if v is value else f'{v!r} '}must be {allowed}{hint}"
        return None


class Device:
    """A torch device this machine has: 'auto', 'cpu', 'cuda' or 'cuda:N' (N a visible GPU), 'mps' on Apple
    silicon. torch is imported only to check a GPU, so a CPU run's config errors stay instant."""

    def describe(self, namespace):
        return "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', one this machine has"

    def refuse(self, value, namespace):
        if not isinstance(value, str) or value in ('auto', 'cpu'):
            return None
        kind, colon, index = value.partition(':')
        if value == 'mps':
            import torch
            return None if torch.backends.mps.is_available() else "this machine has no MPS device: use cpu"
        if kind != 'cuda' or (colon and not index.isdigit()):
            return f"must be {self.describe(namespace)}"
        import torch
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "this machine has no CUDA device: use cpu"
        if colon and int(index) >= count:
            return (f"this machine has {count} CUDA device{'s' if count > 1 else ''} "
                    f"({', '.join(f'cuda:{i}' for i in range(count))})")
        return None


MARKERS = (Range, Choice, Device)


def _alternatives(value, allowed, markers, namespace):
    """What else a key takes besides the kind of value refused, for its error: ' (or None)', ' (or 'auto')'."""
    if isinstance(value, (list, tuple)):
        return ''
    ranges = ' '.join(m.describe() for m in markers if isinstance(m, Range))
    words = [repr(c) for m in markers if isinstance(m, Choice) for c in m.values(namespace) if isinstance(c, str)]
    others = []
    for t in allowed:
        if isinstance(value, t) and not isinstance(value, bool) or _is_number(value) and t in (int, float):
            continue
        if t is type(None):
            others.append('None')
        elif t in (int, float):
            others.append(f"{t.__name__} {ranges}".strip())
        elif t is str:
            others.append(' or '.join(words) if words else 'a str')
        elif t in (list, tuple) and not any(isinstance(m, Choice) and m.many for m in markers):
            others.append('a list')
    return f" (or {', or '.join(others)})" if others else ''


def _split_annotation(annotation):
    """-> (the type part, or None for a bare marker; the markers)."""
    if isinstance(annotation, MARKERS):
        return None, [annotation]
    if typing.get_origin(annotation) is Annotated:
        base, *meta = typing.get_args(annotation)
        return base, [m for m in meta if isinstance(m, MARKERS)]
    return annotation, []


def config_keys(namespace):
    """The names of `namespace` (a script's globals()) that are config keys now: public, not ALL_CAPS, holding a
    literal (number, bool, str, None, list, tuple). Modules, functions and classes never are."""
    return [k for k, v in namespace.items()
            if not k.startswith('_') and not k.isupper() and isinstance(v, CONFIG_TYPES)]


def _allowed_types(annotation):
    """An annotation (int, int | None, typing.Optional[int], list[int], ...) -> tuple of plain types."""
    if isinstance(annotation, pytypes.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for a in typing.get_args(annotation) for t in _allowed_types(a))
    if annotation is None:
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)


def _type_name(allowed):
    return " or ".join("None" if t is type(None) else t.__name__ for t in allowed)


def _check(key, value, allowed):
    """Return value if its type is allowed (int is fine for float, a tuple is fine for list), else die."""
    if type(None) in allowed and value is None:
        return value
    if isinstance(value, bool):  # bool is an int subclass: only accept it where bool is allowed
        ok = bool in allowed
    elif isinstance(value, int) and float in allowed and int not in allowed:
        value, ok = float(value), True
    elif isinstance(value, (list, tuple)) and (list in allowed or tuple in allowed):
        ok = True
        value = list(value) if list in allowed else tuple(value)
    else:
        ok = type(value) in allowed
    if not ok:
        die(f"--{key} expects {_type_name(allowed)}, got {value!r} ({type(value).__name__})", 2)
    return value


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as --dataset=pydocs is a string


class _Assignments(dict):
    """The namespace a config file runs in: seeded with the defaults, so that the file may read them
    (`max_iters = 2 * max_iters`), and recording every name the file assigns. Only those are the keys the file
    sets: a default it merely reads is not, and one it assigns is, even to the default's own value. The record is
    kept by the interpreter itself, so it sees what a file can do: plain, tuple and augmented assignments, `for`
    targets, and `from config.base import *` (a base runs as a module of its own, so it assigns exactly the names
    it brings, and those of any base it imports in turn). Module-level code stores into a namespace that is not
    a plain dict through __setitem__; a comprehension's or a function's own variables never reach it. Neither the
    values (a key set to its default's value is set all the same) nor a reading of the source (which cannot follow
    an `if`, or a base's own imports) could tell the keys set from the defaults as surely."""

    def __init__(self, defaults):
        super().__init__(defaults)
        self.assigned = set()

    def __setitem__(self, key, value):
        self.assigned.add(key)
        super().__setitem__(key, value)


def configure(namespace, argv=None, keys=None, types=None, given=None):
    """Resolve the config of a script. namespace: its globals(); keys: its config keys (default: the snapshot
    config_keys(namespace) now); types: {key: tuple of types}, for a key whose annotation cannot say it; given: a
    set that receives the keys the config file (or a base it imports) assigned or the command line set, whatever
    their value, and never a default the file only read (train.py checks those against a checkpoint it resumes,
    so a default must not count as given). Returns the resolved {key: value} dict."""
    argv = sys.argv[1:] if argv is None else list(argv)
    keys = config_keys(namespace) if keys is None else list(keys)
    annotations = namespace.get('__annotations__', {})
    defaults = {k: namespace[k] for k in keys}
    allowed, markers = {}, {}
    for k, v in defaults.items():
        annotation, markers[k] = _split_annotation(annotations.get(k))
        if types and k in types:
            allowed[k] = tuple(types[k])
        elif annotation is not None:
            allowed[k] = _allowed_types(annotation)
        elif v is None:  # a None default without annotation accepts any literal
            allowed[k] = CONFIG_TYPES
        elif isinstance(v, (list, tuple)):
            allowed[k] = (list, tuple)
        else:
            allowed[k] = (type(v),)

    def unknown(key):
        close = difflib.get_close_matches(key, list(defaults), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        die(f"unknown config key '{key}'{hint}", 2)

    if "-h" in argv or "--help" in argv:
        print("keys (override with --key=value; a config file may come first): default, type, allowed values")
        width = max((len(f"--{k}={v!r}") for k, v in defaults.items()), default=0)
        for k, v in defaults.items():
            kind = 'any literal' if allowed[k] == CONFIG_TYPES else _type_name(allowed[k])
            what = ', '.join([kind, *(m.describe(namespace) for m in markers[k])])
            print(f"  {f'--{k}={v!r}':<{width}}  {what}")
        sys.exit(0)

    config = dict(defaults)
    # 1) the config file: the first argument that is not an option
    if argv and not argv[0].startswith("--"):
        path = argv.pop(0)
        if not os.path.isfile(path):
            die(f"config file '{path}' not found", 2)
        scope = _Assignments(config)
        try:
            with open(path) as f:
                code = compile(f.read(), path, "exec")
            exec(code, scope)
        except Exception as e:  # a broken config file is a config error, reported on one line
            die(f"config file '{path}' failed: {type(e).__name__}: {e}", 2)
        # the keys the file set: those it assigned, and any that holds another object than its default (a function
        # of the file that writes a global; the interpreter stores those without going through the scope)
        assigned = scope.assigned | {k for k, v in scope.items() if k not in defaults or v is not defaults[k]}
        for k, v in scope.items():
            if k not in assigned or k.startswith("_") or not isinstance(v, CONFIG_TYPES):
                continue  # modules, functions and private helpers of the config file are not keys
            if k not in defaults:
                unknown(k)
            config[k] = _check(k, v, allowed[k])
            if given is not None:
                given.add(k)
    # 2) overrides: --key=value or --key value
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            die(f"unexpected argument '{arg}' (a config file must come first; options look like --key=value)", 2)
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, text = arg[2:], argv[i + 1]
            i += 1
        else:
            die(f"option '{arg}' has no value (use --key=value)", 2)
        i += 1
        if key not in defaults:
            unknown(key)
        config[key] = _check(key, _parse_value(text), allowed[key])
        if given is not None:
            given.add(key)
    # 3) allowed values, once every value is final (a file's value the command line replaces is not checked)
    for k, v in config.items():
        for marker in markers[k]:
            why = marker.refuse(v, namespace)
            if why:
                die(f"--{k}={v!r}: {why}{_alternatives(v, allowed[k], markers[k], namespace)}", 2)
    namespace.update(config)
    return config
