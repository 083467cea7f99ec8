"""Checks that keep one broken plugin from taking the others down.

:class:`zoo_core.registry.Registry` loads plugins; this module says what is
wrong with one, in one line per problem, so ``zoo plugins`` can show it and
the rest of the zoo can carry on:

- :func:`hook_problems`: the plugin against the hook specification (a hook
  that does not exist, a ``zoo_register_*`` function without ``@hookimpl``);
- :func:`component_problems` and :func:`model_problems`: each thing a plugin
  registers, before the registry accepts it;
- :func:`watch_signals` and :func:`is_user_interrupt`: a ``KeyboardInterrupt``
  raised by a plugin's own code is a plugin failure; Ctrl-C (or SIGTERM) still
  stops zoo.

Nothing here imports TensorFlow: the component bases are looked up in
``sys.modules`` only, since a class cannot subclass a base whose module was
never imported.
"""

from __future__ import annotations

import contextlib
import difflib
import dis
import functools
import os
import re
import signal
import sys
import threading
import traceback
import types
from collections.abc import Iterator, Mapping
from typing import Any

from zoo_core.config import KINDS

# Names travel on the command line (`--cell NAME`, `enc/cell/agg/head`, `--set kind.param=`).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
PARAM_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOOK_PREFIX = "zoo_register_"
BASES = {
    "encoder": ("zoo_core.encoders", "Encoder"),
    "cell": ("zoo_core.cells", "Cell"),
    "aggregator": ("zoo_core.aggregators", "Aggregator"),
    "head": ("zoo_core.heads", "Head"),
}
_PARAM_TYPES = (int, float, bool, str)


def one_line(err: BaseException) -> str:
    """``Type: message (file.py:line)`` on one line, for ``zoo plugins`` and warnings."""
    message = str(err).strip().replace("\n", " ")
    text = f"{type(err).__name__}: {message}" if message else type(err).__name__
    if isinstance(err, SyntaxError) and err.filename:
        text += f" ({err.filename}:{err.lineno})"
    elif err.__traceback__ is not None:
        frame = traceback.extract_tb(err.__traceback__)[-1]
        text += f" ({os.path.basename(frame.filename)}:{frame.lineno})"
    return text


# -- KeyboardInterrupt: the plugin's or the user's ------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def watch_signals() -> Iterator[dict[str, bool]]:
    """Notes whether SIGINT or SIGTERM arrives while plugin code runs.

    Each signal is still handled as before (by Python's or zoo's handler,
    which raise ``KeyboardInterrupt``); the note lets :func:`is_user_interrupt`
    tell a user's Ctrl-C or kill, which must stop zoo, from a
    ``KeyboardInterrupt`` a plugin raises itself, which is that plugin's
    failure. Only Python-level handlers can raise into plugin code, so only
    those are wrapped; signals only reach the main thread, so elsewhere every
    ``KeyboardInterrupt`` is the plugin's.

    Yields:
        ``{"received": bool}``, set when a watched signal arrives.
    """
    note = {"received": False}
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):  # SIG_DFL and SIG_IGN never raise into Python: left alone
                previous[signum] = handler
                signal.signal(signum, functools.partial(_noting, note, handler))
    try:
        yield note
    finally:
        for signum, handler in previous.items():  # also undoes a handler a plugin set while loading
            signal.signal(signum, handler)


def _noting(note: dict[str, bool], handler, signum: int, frame) -> None:
    note["received"] = True
    handler(signum, frame)


def is_user_interrupt(err: BaseException, note: Mapping[str, bool]) -> bool:
    """Whether ``err`` must propagate: a ``KeyboardInterrupt`` while a real stop signal arrived."""
    return isinstance(err, KeyboardInterrupt) and note.get("received", False)


# -- the plugin against the hook specification ---------------------------------------

def hook_problems(pm, plugin: Any, plugin_name: str) -> list[str]:
    """What is wrong with a registered plugin's hooks, one line each.

    What ``pm.check_pending()`` checks (a ``@hookimpl`` whose name is no hook),
    for this plugin alone and naming every such hook, plus what pluggy cannot
    see: a function named like a hook but not marked ``@zoo_core.hookimpl``,
    which pluggy skips, so zoo would never call it.
    """
    problems = []
    known = sorted(name for name in vars(pm.hook) if not name.startswith("_")
                   and getattr(pm.hook, name).has_spec())
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        impls = [i for i in caller.get_hookimpls() if i.plugin_name == plugin_name and not i.optionalhook]
        if impls:
            problems.append(f"unknown hook {caller.name}{_did_you_mean(caller.name, known)}")
    for name in sorted(dir(plugin)):
        if not name.startswith(HOOK_PREFIX) or _is_hookimpl(pm, plugin, name):
            continue  # a marked function is called, or reported above as an unknown hook
        value = getattr(plugin, name, None)
        if callable(value):
            problems.append(f"{name} is not marked @zoo_core.hookimpl, so zoo never calls it"
                            + ("" if name in known else f" (and it is no hook{_did_you_mean(name, known)})"))
    return problems


def _is_hookimpl(pm, plugin: Any, name: str) -> bool:
    try:
        return pm.parse_hookimpl_opts(plugin, name) is not None
    except Exception:  # noqa: BLE001 - an odd attribute is simply not a hookimpl
        return False


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f" (hooks: {', '.join(known)})"


# -- what a plugin registers ---------------------------------------------------------

def loaded_base(kind: str) -> type | None:
    """The zoo base class for ``kind``, if its module is imported (else nothing can subclass it)."""
    module_name, class_name = BASES[kind]
    module = sys.modules.get(module_name)
    return getattr(module, class_name, None) if module is not None else None


def component_problems(kind: str, cls: Any) -> list[str]:
    """Why ``cls`` cannot be registered as a ``kind``, one phrase each; empty if it can.

    Checks what ``zoo components``, ``--set`` and model building rely on: a
    subclass of the kind's base with a ``name``, a ``description``, valid
    ``aliases`` and ``hparams`` (:class:`zoo_core.params.HParam` objects whose
    defaults are valid), no abstract method left, and no ``self.params["x"]``
    read in its code for an ``x`` it does not declare.
    """
    if not isinstance(cls, type):
        return ["it is not a class"]
    base = loaded_base(kind)
    if base is None or not issubclass(cls, base):
        module_name, class_name = BASES[kind]
        return [f"does not subclass {module_name}.{class_name}"]
    problems = []
    if getattr(cls, "kind", None) != kind:
        problems.append(f"its kind is {getattr(cls, 'kind', None)!r}, not {kind!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append("no name" if not name else f"name {name!r} is not a plain name (letters, digits, . _ + -)")
    description = getattr(cls, "description", None)
    if not isinstance(description, str) or not description.strip():
        problems.append("no description")
    aliases = getattr(cls, "aliases", ())
    if not isinstance(aliases, (tuple, list)) or not all(
            isinstance(a, str) and NAME_PATTERN.fullmatch(a) for a in aliases):
        problems.append(f"aliases must be a tuple of plain names, not {aliases!r}")
    declared = _hparam_problems(getattr(cls, "hparams", None), problems)
    abstract = sorted(n for n in dir(cls) if getattr(_class_attr(cls, n), "__isabstractmethod__", False))
    if abstract:
        problems.append(f"does not implement {', '.join(abstract)}")
    if declared is not None:
        for param, where in sorted(param_reads(cls).items()):
            if param not in declared:
                problems.append(f"{where} reads hyperparameter {param!r}, which its hparams do not declare")
    return problems


def _class_attr(cls: type, name: str) -> Any:
    try:
        return getattr(cls, name)
    except Exception:  # noqa: BLE001 - a descriptor failing on the class is not abstract
        return None


def _hparam_problems(hparams: Any, problems: list[str]) -> set[str] | None:
    """Appends what is wrong with ``hparams``; returns the declared names, or None if unreadable."""
    from zoo_core.errors import ZooError
    from zoo_core.params import HParam

    if not isinstance(hparams, (tuple, list)):
        problems.append(f"hparams must be a tuple of HParam, not {hparams!r}")
        return None
    names: set[str] = set()
    for p in hparams:
        if not isinstance(p, HParam):
            problems.append(f"hparams holds {p!r}, not an HParam")
            continue
        if not isinstance(p.name, str) or not PARAM_PATTERN.fullmatch(p.name):
            problems.append(f"hyperparameter name {p.name!r} is not an identifier")
            continue
        if p.name in names:
            problems.append(f"hyperparameter {p.name!r} is declared twice")
        names.add(p.name)
        if p.type not in _PARAM_TYPES:
            problems.append(f"hyperparameter {p.name!r} has type {p.type!r}; expected int, float, bool or str")
            continue
        try:
            p.validate(p.default)
        except ZooError as err:
            problems.append(f"hyperparameter {p.name!r} has an invalid default: {err}")
        if p.tiny is not None:
            try:
                p.validate(p.tiny)
            except ZooError as err:
                problems.append(f"hyperparameter {p.name!r} has an invalid tiny value: {err}")
    return names


def param_reads(cls: type) -> dict[str, str]:
    """``self.params["x"]`` reads in the code of ``cls`` and its zoo bases: ``{x: "Class.method"}``."""
    from zoo_core.component import Component  # imported already: cls subclasses it

    reads: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, Component):
            reads.update(_own_param_reads(klass))
    return reads


@functools.lru_cache(maxsize=None)
def _own_param_reads(klass: type) -> dict[str, str]:
    reads = {}
    for attr, value in vars(klass).items():
        for func in (value, getattr(value, "__func__", None), getattr(value, "fget", None),
                     getattr(value, "python_function", None)):
            code = getattr(func, "__code__", None)
            if isinstance(code, types.CodeType):
                for param in _code_param_reads(code):
                    reads.setdefault(param, f"{klass.__name__}.{attr}")
    return reads


def _code_param_reads(code: types.CodeType) -> set[str]:
    """Constant keys of ``self.params[...]`` in ``code`` and the functions nested in it (bytecode, no source needed)."""
    found: set[str] = set()
    stack = [code]
    while stack:
        code = stack.pop()
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        if "params" not in code.co_names:
            continue
        ins = list(dis.get_instructions(code))
        for load, attr, key, subscript in zip(ins, ins[1:], ins[2:], ins[3:]):
            if (load.opname.startswith(("LOAD_FAST", "LOAD_DEREF")) and load.argval == "self"
                    and attr.opname == "LOAD_ATTR" and attr.argval == "params"
                    and key.opname == "LOAD_CONST" and isinstance(key.argval, str)
                    and (subscript.opname == "BINARY_SUBSCR"
                         or (subscript.opname == "BINARY_OP" and subscript.argrepr == "[]"))):
                found.add(key.argval)
    return found


def model_problems(spec: Any) -> list[str]:
    """Why a registered model (a :class:`zoo_core.config.ModelSpec`) cannot be listed or built."""
    problems = []
    if not isinstance(spec.name, str) or not NAME_PATTERN.fullmatch(spec.name):
        problems.append("no name" if not spec.name else f"name {spec.name!r} is not a plain name")
    for kind in KINDS:
        value = getattr(spec, kind)
        if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
            problems.append(f"its {kind} {value!r} is not a component name")
    if not isinstance(spec.description, str):
        problems.append(f"description {spec.description!r} is not text")
    if not isinstance(spec.params, Mapping) or not all(
            k in KINDS and isinstance(v, Mapping) and all(isinstance(p, str) for p in v)
            for k, v in spec.params.items()):
        problems.append(f"params must map kinds to {{name: value}} tables, not {spec.params!r}")
    return problems
