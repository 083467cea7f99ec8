"""The registry, plugin loading, registry.toml and the bad-input messages of issue 2."""

from __future__ import annotations

import csv
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo_core.cli import cli
from zoo_core.config import ModelSpec, RunSpec
from zoo_core.errors import DuplicateNameError, UnknownNameError, ZooError
from zoo_core.registry import build_registry
from zoo_core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

def echo_plugin(class_name: str, description: str) -> str:
    """Source of a plugin registering a tanh cell called "echo"."""
    return f'''
import zoo_core
from zoo_core.cells import TanhCell

class {class_name}(TanhCell):
    name = "echo"
    description = "{description}"

@zoo_core.hookimpl
def zoo_register_cells():
    return [{class_name}]
'''


GOOD_PLUGIN = echo_plugin("Echo", "a tanh cell under another name")
CLASHING_PLUGIN = echo_plugin("AnotherEcho", "clashes with good_plugin")

BROKEN_IMPORT = "import zoo_core\nraise RuntimeError('this plugin is broken on purpose')\n"

BROKEN_HOOK = '''
import zoo_core

@zoo_core.hookimpl
def zoo_register_cells():
    raise ValueError("cannot register today")
'''


CORE_MODULES = ["zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", "zoo_core.heads"]


def write_registry(tmp_path: Path, modules: list[str], extra: str = "") -> Path:
    """A registry.toml enabling the built-in components plus ``modules``."""
    listed = ", ".join(f'"{m}"' for m in [*CORE_MODULES, *modules])
    path = tmp_path / "registry.toml"
    path.write_text(f"[plugins]\nmodules = [{listed}]\n{textwrap.dedent(extra)}", encoding="utf-8")
    return path


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path holding the test plugins above."""
    folder = tmp_path / "plugins_on_path"
    folder.mkdir()
    for name, source in [("good_plugin", GOOD_PLUGIN), ("clashing_plugin", CLASHING_PLUGIN),
                         ("broken_import", BROKEN_IMPORT), ("broken_hook", BROKEN_HOOK)]:
        (folder / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    return folder


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- the registry itself --------------------------------------------------------

def test_builtins_are_registered_by_the_modules_that_define_them(registry):
    assert {"one-hot", "embedding"} <= set(registry.list("encoder"))
    assert "tanh" in registry.list("cell")
    assert {"last", "mean-states", "mean-logits"} <= set(registry.list("aggregator"))
    assert {"softmax2", "sigmoid1"} <= set(registry.list("head"))
    for kind in ("encoder", "cell", "aggregator", "head"):
        for name in registry.list(kind):
            entry = registry.get(kind, name)
            if entry.plugin.startswith("zoo_core."):
                module = entry.obj.__module__  # registered where it is defined (or by its package: zoo_core.cells)
                assert module == entry.plugin or module.startswith(entry.plugin + "."), (kind, name)
    assert registry.get("cell", "tanh").plugin == "zoo_core.cells"
    assert registry.get("encoder", "ngram-embedding").plugin == "zoo_plugins.ngrams"
    assert all(registry.plugins[m].status == "loaded" for m in CORE_MODULES)
    assert "zoo_plugins.builtin" not in registry.plugins


def test_every_concrete_component_class_is_registered(registry):
    """Forgetting to register a component (a class with a ``name`` in zoo_core or zoo_plugins) fails here."""
    import importlib
    import inspect
    import pkgutil

    import zoo_core
    import zoo_plugins
    from zoo_core.component import Component

    unregistered, checked = [], 0
    for package in (zoo_core, zoo_plugins):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # running it would start the CLI
            module = importlib.import_module(info.name)
            for cls in vars(module).values():
                if not (isinstance(cls, type) and issubclass(cls, Component) and cls.__module__ == module.__name__
                        and "name" in vars(cls) and cls.name and not inspect.isabstract(cls)):
                    continue
                checked += 1
                names = registry.list(cls.kind)
                if cls.name not in names or registry.get(cls.kind, cls.name).obj is not cls:
                    unregistered.append(f"{cls.kind} {cls.name!r} ({module.__name__}.{cls.__qualname__})")
    assert not unregistered, f"defined but not registered: {', '.join(unregistered)}"
    assert checked >= len(registry.list("cell"))  # the walk found the components at all


def test_an_older_registry_toml_listing_zoo_plugins_builtin_still_loads_the_builtins(tmp_path):
    """``zoo_plugins.builtin`` is gone; in an older file it stands for the zoo_core modules that replaced it."""
    path = tmp_path / "registry.toml"
    path.write_text('[plugins]\nmodules = ["zoo_plugins.builtin", "zoo_core.cells", "zoo_plugins.models"]\n',
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["--registry", str(path), "plugins", "--format", "csv"])
    assert result.exit_code == 0 and result.stderr == "", result.output
    rows = {line.split(",")[0]: line for line in result.stdout.splitlines()[1:]}
    ours = [*CORE_MODULES, "zoo_plugins.models"]
    assert [m for m in rows if m in ours] == ours  # each once, in the old module's place
    for module in CORE_MODULES:
        assert rows[module].startswith(f"{module},0.1.0,registry.toml (as zoo_plugins.builtin),loaded,")
    assert "zoo_plugins.builtin" not in rows
    result = CliRunner().invoke(cli, ["--registry", str(path), "components", "cell", "--format", "csv"])
    assert result.exit_code == 0 and result.stderr == ""
    assert any(line.startswith("cell,tanh,zoo_core.cells,") for line in result.stdout.splitlines())


def test_components_params_gives_each_setting_its_help():
    result = CliRunner().invoke(cli, ["components", "cell", "--filter", "skip", "--params", "--format", "csv"])
    assert result.exit_code == 0 and result.stderr == "", result.output
    rows = {row[2]: row for row in csv.reader(result.stdout.splitlines()[1:])}
    assert rows["drop_path"][:5] == ["cell", "skip", "drop_path", "0.0", "float in [0.0, 0.95]"]
    assert rows["drop_path"][5].startswith("fraction of training examples whose inner-cell outputs are zeroed")
    assert set(rows) == {"cell", "units", "directions", "kernel_init", "recurrent_init", "stop_gradient",
                         "inner_width", "drop_path"}


def test_list_filters_with_fnmatch(registry):
    assert registry.list("aggregator", "mean-*") == sorted(
        n for n in registry.list("aggregator") if n.startswith("mean-"))
    assert registry.list("aggregator", ["last", "nothing-*"]) == ["last"]
    assert "seed-grid" not in registry.list("model")  # presets are not models


def test_aliases_resolve_to_the_canonical_name(registry):
    assert registry.canonical("head", "sigmoid") == "sigmoid1"
    assert registry.canonical("head", "softmax") == "softmax2"


def test_create_validates_hyperparameters(registry):
    cell = registry.create("cell", "tanh", 8, units=3)
    assert cell.recurrent_kernel.shape == (3, 3)
    with pytest.raises(ZooError, match=r"^cell 'tanh': parameter 'units' got -1; expected int in \[1, 8192\]$"):
        registry.create("cell", "tanh", 8, units=-1)
    with pytest.raises(ZooError, match=r"got 'many'.*expected int in \[1, 8192\]"):
        registry.create("cell", "tanh", 8, units="many")
    declared = ", ".join(sorted(p.name for p in registry.get("cell", "tanh").obj.hparams))
    with pytest.raises(ZooError, match=rf"has no parameter 'size' \(its parameters: {declared}\)"):
        registry.create("cell", "tanh", 8, size=3)
    with pytest.raises(ZooError, match="one of glorot, orthogonal, identity"):
        registry.create("cell", "tanh", 8, kernel_init="zeros")


def test_unknown_name_lists_closest_names_and_how_to_list_all(registry):
    with pytest.raises(UnknownNameError) as err:
        registry.get("cell", "tahn")
    message = str(err.value)
    assert message.startswith("unknown cell 'tahn'; did you mean 'tanh'")  # the closest name first
    assert message.endswith("? (run `zoo components cell` to list them all)") and "\n" not in message
    with pytest.raises(UnknownNameError, match=r"unknown model 'gru-maen'; did you mean 'gru-mean'.*`zoo models`"):
        registry.get("model", "gru-maen")


def test_models_matching_names_patterns_and_literal_combinations(registry):
    assert [s.name for s in registry.models_matching("elman-*")] == ["elman-last", "elman-onehot"]
    assert {s.name for s in registry.models_matching("*/tanh/last/*")} == {"elman-last", "elman-onehot"}
    (mix,) = registry.models_matching("one-hot/tanh/mean-states/sigmoid")  # not a named model; aliases resolve
    assert mix.combo == "one-hot/tanh/mean-states/sigmoid1" and mix.name == ""
    with pytest.raises(UnknownNameError, match="unknown cell 'tahn'; did you mean 'tanh'"):
        registry.models_matching("one-hot/tahn/last/sigmoid1")
    with pytest.raises(UnknownNameError, match="unknown model 'elman-lats'; did you mean 'elman-last'"):
        registry.models_matching("elman-lats")


def test_every_preset_expands_to_valid_specs(registry):
    grid = registry.expand_preset(registry.preset("seed-grid"))
    assert len(grid) == 12
    assert {s.encoder for s in grid} == {"one-hot", "embedding"} and {s.cell for s in grid} == {"tanh"}
    assert len({s.combo for s in grid}) == 12
    with pytest.raises(UnknownNameError, match="unknown preset 'seed-gird'; did you mean 'seed-grid'"):
        registry.preset("seed-gird")
    known = ", ".join(sorted(registry.settings.presets))
    assert {"best", "quick", "seed-grid", "baseline"} <= set(registry.settings.presets)
    with pytest.raises(UnknownNameError, match=rf"^unknown preset 'nope'; known: {re.escape(known)} \(presets live in"):
        registry.preset("nope")
    best, = registry.expand_preset(registry.preset("best"))
    assert best.name == "ngram-bigru-max" and best.encoder == "ngram-embedding"
    assert registry.preset("best").data == {"num_words": 40000, "maxlen": 1000, "batching": "bucket"}
    baseline = registry.expand_preset(registry.preset("baseline"))
    assert [s.name for s in baseline] == ["ngram-fasttext", "ngram-skip-bigru"] and baseline[0].cell == "identity"
    assert registry.preset("baseline").train == {"epochs": 8}


# -- plugins --------------------------------------------------------------------

def test_a_plugin_module_registers_a_cell(tmp_path, plugin_dir):
    registry = build_registry(write_registry(tmp_path, ["good_plugin"]), entry_points=False)
    assert registry.get("cell", "echo").plugin == "good_plugin"
    assert registry.plugins["good_plugin"].registered == {"cell": ["echo"]}


def test_wrapper_cells_find_a_plugin_cell_through_the_registry(tmp_path, plugin_dir):
    registry = build_registry(write_registry(tmp_path, ["good_plugin"]), entry_points=False)
    for wrapper in ("bidirectional", "stacked"):
        cell = registry.create("cell", wrapper, 8, cell="echo", units=3)
        assert cell.inner_class is registry.get("cell", "echo").obj
    with pytest.raises(UnknownNameError, match="unknown cell 'ecco'; did you mean 'echo'"):
        registry.create("cell", "stacked", 8, cell="ecco")


def test_two_plugins_registering_one_name_keep_the_first_and_name_both(tmp_path, plugin_dir):
    registry = build_registry(write_registry(tmp_path, ["good_plugin", "clashing_plugin"]), entry_points=False)
    assert registry.get("cell", "echo").plugin == "good_plugin"
    info = registry.plugins["clashing_plugin"]
    assert info.status == "failed" and info.registered == {}
    assert info.errors == ["cell 'echo' is already registered by plugin 'good_plugin'; kept that one"]
    with pytest.raises(DuplicateNameError, match="^cell 'echo' is already registered by plugin 'good_plugin'"):
        registry.register("cell", registry.get("cell", "echo").obj, "me")
    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "registry.toml"), "components", "cell"])
    assert result.exit_code == 0 and "echo" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "warning: plugin 'clashing_plugin' failed: cell 'echo' is already registered by plugin 'good_plugin'; "
        "kept that one (see `zoo plugins`)"]


@pytest.mark.parametrize("broken, error", [
    ("broken_import", "RuntimeError: this plugin is broken on purpose"),
    ("broken_hook", "ValueError: cannot register today"),
])
def test_a_broken_plugin_is_reported_and_the_others_keep_working(tmp_path, plugin_dir, broken, error):
    registry = build_registry(write_registry(tmp_path, [broken, "good_plugin"]), entry_points=False)
    info = registry.plugins[broken]
    assert info.status == "failed" and info.error.startswith(error)
    assert "echo" in registry.list("cell") and "tanh" in registry.list("cell")

    result = CliRunner().invoke(cli, ["--registry", str(tmp_path / "registry.toml"), "plugins", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = {line.split(",")[0]: line for line in result.stdout.splitlines()}
    assert ",failed," in rows[broken] and error in rows[broken]
    assert ",loaded," in rows["good_plugin"]
    assert f"warning: plugin '{broken}' failed: {error}" in result.stderr


def test_a_missing_plugin_module_is_reported_by_name(tmp_path):
    registry = build_registry(write_registry(tmp_path, ["no_such_zoo_plugin"]), entry_points=False)
    assert registry.plugins["no_such_zoo_plugin"].status == "failed"
    assert "No module named 'no_such_zoo_plugin'" in registry.plugins["no_such_zoo_plugin"].error


def test_zoo_plugins_restricts_which_plugins_load(tmp_path, plugin_dir, monkeypatch):
    path = write_registry(tmp_path, ["good_plugin", "clashing_plugin"])
    monkeypatch.setenv("ZOO_PLUGINS", "good_*")
    registry = build_registry(path, entry_points=False)
    assert registry.plugins["clashing_plugin"].status == "disabled"
    assert registry.get("cell", "echo").plugin == "good_plugin"
    # The flag wins over the environment.
    registry = build_registry(path, plugins="clashing_*", entry_points=False)
    assert registry.get("cell", "echo").plugin == "clashing_plugin"
    # The zoo's own components load whatever the patterns say; other plugins do not.
    registry = build_registry(path, plugins="clashing_*", entry_points=False)
    assert {registry.plugins[m].status for m in CORE_MODULES} == {"loaded"}
    assert registry.plugins["good_plugin"].status == "disabled" and "tanh" in registry.list("cell")


NO_MATCH = [
    (["--plugins", "nomatch*", "components"], {}, "'nomatch*'"),
    (["--plugins", "zoo_plugins.*,typo", "models"], {}, "'typo'"),  # one pattern of several
    (["components", "cell"], {"ZOO_PLUGINS": "nomatch*"}, "'nomatch*'"),
]


@pytest.mark.parametrize("args, env, pattern", NO_MATCH, ids=[" ".join(a) + str(e) for a, e, _ in NO_MATCH])
def test_a_plugin_pattern_matching_no_plugin_is_one_line_listing_the_plugins(args, env, pattern):
    result = CliRunner(env=env).invoke(cli, args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"Error: plugin pattern {pattern} (--plugins or $ZOO_PLUGINS) matches no plugin; "
                           "plugins: zoo_core.encoders, zoo_core.cells, zoo_core.aggregators, zoo_core.heads, zoo_plugins.models, "
                           "zoo_plugins.ngrams")


def test_a_plugin_pattern_matching_no_plugin_loads_nothing(tmp_path, plugin_dir):
    marker = tmp_path / "imported"
    (plugin_dir / "marking_plugin.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    path = write_registry(tmp_path, ["marking_plugin"])
    with pytest.raises(ZooError, match="'marking' .* plugins: zoo_core.encoders, .*, marking_plugin$"):
        build_registry(path, plugins="zoo_core.*,marking", entry_points=False)
    assert not marker.exists()  # refused before any plugin was imported
    assert build_registry(path, plugins="zoo_core.*,marking*", entry_points=False)
    assert marker.exists()


# -- registry.toml ----------------------------------------------------------------

def test_malformed_registry_toml_names_file_and_line(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_text('[plugins]\nmodules = ["zoo_core.cells"]\n\n[data]\nmaxlen = = 3\n', encoding="utf-8")
    with pytest.raises(ZooError, match=rf"^{path}:5: .*\(column \d+\)$"):
        load_settings(path)
    result = CliRunner().invoke(cli, ["--registry", str(path), "components"])
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {path}:5: ")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("body, line, message", [
    ('[data]\nmaxlen = "long"\n', 3, "data: parameter 'maxlen' got 'long'"),
    ('[train]\nepochs = 0\n', 3, r"train: parameter 'epochs' got 0; expected int in \[1, 10000\]"),
    ('[modles.x]\ncell = "tanh"\n', 3, r"unknown table \[modles\]"),
    ('[presets.p]\ncells = ["tanh"]\n', 3, "a grid needs encoders, cells, aggregators and heads"),
    ('[models.m]\nencoder = "embedding"\n', 3, "model 'm' is missing cell, aggregator, head"),
])
def test_registry_toml_content_errors_name_file_and_line(tmp_path, body, line, message):
    path = write_registry(tmp_path, [], body)
    with pytest.raises(ZooError, match=rf"^{path}:{line}: .*{message}"):
        load_settings(path)


def test_checkout_registry_defaults_and_search_path():
    settings = load_settings()
    assert settings.path == ROOT / "registry.toml"
    assert settings.data.num_words == 20000 and settings.data.maxlen == 200
    # The product resolves relative entries (symlinks followed), like its other paths; so does the
    # expected path, or a checkout whose ../shared is a symlink fails here.
    assert (ROOT.parent / "shared" / "data" / "aclImdb_v1_labelled.tar.gz").resolve() in settings.search_path


# -- specs ----------------------------------------------------------------------------

def test_run_spec_round_trips_through_json(registry):
    from zoo_core.specs import build_run_spec

    run = build_run_spec(registry, "gru-mean" if "gru" in registry.list("cell") else "elman-last",
                         {"head": "softmax"}, ["cell.units=8", "data.maxlen=50", "train.clip_norm=1"],
                         {"epochs": 2, "padding": "post"}, seed=3)
    assert run.model.head == "softmax2" and run.model.params["cell"] == {"units": 8}
    assert run.data.maxlen == 50 and run.data.padding == "post" and run.train.epochs == 2 and run.seed == 3
    again = RunSpec.from_json(run.to_json())
    assert again == run and again.key() == run.key()
    assert run.key() != RunSpec(run.model, run.data, run.train, seed=4).key()


def test_model_spec_accepts_per_kind_param_tables():
    spec = ModelSpec.from_mapping({"encoder": "embedding", "cell": "tanh", "aggregator": "last", "head": "sigmoid1",
                                   "cell_params": {"units": 4}}, name="m")
    assert spec.params == {"cell": {"units": 4}} and spec.combo == "embedding/tanh/last/sigmoid1"


@pytest.mark.parametrize("item, message", [
    ("cell.units", "expected SECTION.KEY=VALUE"),
    ("cel.units=3", "unknown section 'cel'"),
    ("cell.units=abc", r"^cell 'tanh': parameter 'units' got 'abc'; expected int in \[1, 8192\]$"),
    ("data.padding=middle", "expected one of pre, post"),
])
def test_bad_set_values_are_one_line_errors(registry, item, message):
    from zoo_core.specs import build_run_spec

    with pytest.raises(ZooError, match=message):
        build_run_spec(registry, "elman-last", {}, [item], {})


# -- the catalogue commands --------------------------------------------------------

def test_components_lists_every_kind_with_its_plugin(registry):
    result = run_cli("components", "--format", "csv")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "kind,name,plugin,description,hyperparameters"
    listed = {(line.split(",")[0], line.split(",")[1].split(" (")[0]) for line in lines[1:]}
    expected = {(kind, name) for kind in ("encoder", "cell", "aggregator", "head") for name in registry.list(kind)}
    assert listed == expected
    assert any(line.startswith("cell,tanh,zoo_core.cells,") and "units=64 (int in [1, 8192])" in line
               for line in lines)


def test_models_and_plugins_commands(registry):
    result = run_cli("models", "elman-*", "--format", "plain")
    assert result.exit_code == 0
    assert "elman-onehot" in result.stdout and "one-hot/tanh/last/softmax2" in result.stdout
    assert "gru-mean" not in result.stdout
    result = run_cli("plugins", "--format", "plain")
    assert "zoo_core.cells" in result.stdout and "loaded" in result.stdout
