"""Frozen configuration dataclasses: what a run is, exactly.

A :class:`RunSpec` (model spec + data settings + training settings + seed)
round-trips through JSON and TOML, so any run can be rebuilt exactly. Fields of
:class:`DataConfig` and :class:`TrainConfig` carry their validation in
metadata (see :func:`setting`), so ``registry.toml``, ``--set data.maxlen=500``
and flags all go through the same checks.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from zoo_core.errors import ZooError
from zoo_core.params import HParam


def setting(default: Any, help: str, **constraints: Any) -> Any:
    """A dataclass field whose validation lives in its metadata (an :class:`HParam`).

    ``constraints`` are :class:`HParam`'s: ``low``, ``high``, ``low_open``, ``choices`` ...
    """
    return dataclasses.field(default=default, metadata={"help": help, **constraints})


@functools.cache
def settings_hparams(cls: type) -> tuple[HParam, ...]:
    """The :class:`HParam` declarations of a settings dataclass's fields."""
    out = []
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        out.append(HParam(f.name, type(f.default), f.default, meta.pop("help", ""), **meta))
    return tuple(out)


def _build(cls: type, given: Mapping[str, Any], owner: str):
    from zoo_core.params import resolve

    return cls(**resolve(settings_hparams(cls), given, owner))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How reviews become batches."""

    source: str = setting("", "data location: a .tar.gz, an aclImdb/ folder or imdb.npz (empty: the search path "
                              "in registry.toml)", allow_empty=True)
    num_words: int = setting(20000, "vocabulary size, including pad=0, start=1, UNK=2", low=4, high=1_000_000)
    maxlen: int = setting(200, "longest sequence kept, in tokens", low=1, high=100_000)
    padding: str = setting("pre", "where padding goes", choices=("pre", "post"))
    truncating: str = setting("pre", "which end of a long review is cut", choices=("pre", "post"))
    long: str = setting("truncate", "over-long training reviews: truncate or drop", choices=("truncate", "drop"))
    split: str = setting("movie", "validation split: disjoint by movie, or random", choices=("movie", "random"))
    val_fraction: float = setting(0.1, "fraction of train held out for validation", low=0.0, high=0.9)
    batching: str = setting("padded", "padded to maxlen, or bucketed by length", choices=("padded", "bucket"))
    mask: bool = setting(True, "mask padded steps (state carried through unchanged)")
    limit: int = setting(0, "use only N train and N test reviews (0: all)", low=0, high=10_000_000)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DataConfig":
        return _build(cls, values, "data")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a model is trained."""

    epochs: int = setting(3, "training epochs", low=1, high=10_000)
    batch_size: int = setting(64, "examples per batch", low=1, high=65_536)
    lr: float = setting(1e-3, "learning rate", low=0.0, low_open=True, high=100.0)
    lr_schedule: str = setting("constant", "learning rate over the run: constant, or decayed to 0 by its last step "
                                           "(cosine or linear)", choices=("constant", "cosine", "linear"))
    optimizer: str = setting("adam", "optimizer: Keras' Adam, SGD or RMSprop, or lazy-adam (Adam whose embedding "
                                     "updates touch only the batch's rows)",
                             choices=("adam", "lazy-adam", "sgd", "rmsprop"))
    cell_lr_scale: float = setting(1.0, "the cell's learning rate as a fraction of lr; below 1 the recurrence learns "
                                        "slower than the encoder and head (discriminative learning rates, Howard & "
                                        "Ruder 2018)", low=0.0, low_open=True, high=100.0)
    ema_momentum: float = setting(0.0, "keep an exponential moving average of the weights (Polyak averaging, as "
                                       "Keras' use_ema): each step average <- m * average + (1 - m) * weights; "
                                       "validation, early stopping and the kept weights use the average, training "
                                       "goes on from the weights, and an interrupted run keeps the average (0: off; 0.99 averages "
                                       "about the last 100 steps)",
                                  low=0.0, high=0.9999)  # float32 rounds 1 - 1e-8 to 1: an average that never moves
    clip_norm: float = setting(5.0, "clip gradients by global norm (0: off)", low=0.0, high=1e9)
    weight_decay: float = setting(0.0, "decoupled weight decay", low=0.0, high=1.0)
    steps_per_epoch: int = setting(0, "training steps per epoch, as in Keras' fit (0: one pass over the training "
                                      "split); fewer steps validate, early-stop and keep the best weights more "
                                      "often, and the next epoch goes on where the pass left off",
                                   low=0, high=10_000_000)
    patience: int = setting(2, "early stopping: epochs without improvement (0: off)", low=0, high=10_000)
    monitor: str = setting("val_loss", "early stopping metric", choices=("val_loss", "val_accuracy"))
    jit: bool = setting(False, "compile the training step with XLA")
    deterministic: bool = setting(False, "deterministic TF ops (slower)")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainConfig":
        return _build(cls, values, "train")


KINDS = ("encoder", "cell", "aggregator", "head")
# NumPy's and Keras' seeding take 0 .. 2**32 - 1.
SEED = HParam("seed", int, 0, "random seed: initial weights, batch order, the --limit subset and the split",
              low=0, high=2**32 - 1)

# Settings added after results were first recorded, with the value that
# behaves as before. At that value they stay out of RunSpec.key(), so runs
# recorded earlier keep their keys and `zoo rank` does not redo them.
SETTINGS_ADDED_LATER = {("train", "lr_schedule"): "constant", ("train", "cell_lr_scale"): 1.0,
                         ("train", "steps_per_epoch"): 0, ("train", "ema_momentum"): 0.0}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Four component names and their hyperparameters.

    Attributes:
        encoder, cell, aggregator, head: Registry names.
        params: ``{kind: {hparam: value}}``, only what differs from defaults.
        name: The named model this came from, or ``""`` for an ad-hoc mix.
        description: One line for ``zoo models``.
    """

    encoder: str
    cell: str
    aggregator: str
    head: str
    params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    name: str = ""
    description: str = ""

    @property
    def combo(self) -> str:
        """``encoder/cell/aggregator/head``, e.g. ``embedding/gru/mean-states/sigmoid1``."""
        return "/".join((self.encoder, self.cell, self.aggregator, self.head))

    @property
    def label(self) -> str:
        """The model's name if it has one, else its combination."""
        return self.name or self.combo

    def component(self, kind: str) -> str:
        return getattr(self, kind)

    def params_for(self, kind: str) -> dict[str, Any]:
        return dict(self.params.get(kind, {}))

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    def with_params(self, kind: str, **values: Any) -> "ModelSpec":
        params = {k: dict(v) for k, v in self.params.items()}
        params.setdefault(kind, {}).update(values)
        return dataclasses.replace(self, params=params)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in KINDS}
        out["params"] = {k: dict(v) for k, v in sorted(self.params.items()) if v}
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], name: str = "") -> "ModelSpec":
        """Builds a spec from a TOML/JSON mapping.

        Accepts ``params = {cell = {units = 128}}`` or per-kind tables
        ``cell_params = {units = 128}``.
        """
        values = dict(values)
        missing = [k for k in KINDS if k not in values]
        if missing:
            raise ZooError(f"model {name or values.get('name', '?')!r} is missing {', '.join(missing)}")
        params = {k: dict(v) for k, v in dict(values.pop("params", {})).items()}
        for kind in KINDS:
            extra = values.pop(f"{kind}_params", None)
            if extra:
                params.setdefault(kind, {}).update(extra)
        unknown = set(values) - set(KINDS) - {"name", "description"}
        if unknown:
            raise ZooError(f"model {name!r} has unknown key {sorted(unknown)[0]!r}")
        bad = set(params) - set(KINDS)
        if bad:
            raise ZooError(f"model {name!r}: params for unknown kind {sorted(bad)[0]!r} (kinds: {', '.join(KINDS)})")
        return cls(
            encoder=values["encoder"],
            cell=values["cell"],
            aggregator=values["aggregator"],
            head=values["head"],
            params=params,
            name=values.get("name", name),
            description=values.get("description", ""),
        )


def _tuned_settings(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` checked to be data or training settings (``"train.lr"``), sorted.

    Raises:
        ZooError: a name that is not ``data.NAME`` or ``train.NAME`` of an existing setting.
    """
    sections = {"data": DataConfig, "train": TrainConfig}
    for name in names:
        section, _, field = str(name).partition(".")
        if section not in sections or field not in {f.name for f in dataclasses.fields(sections[section])}:
            raise ZooError(f"tuned: {name!r} is not a data or training setting (data.NAME or train.NAME)")
    return tuple(sorted(set(map(str, names))))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run: rebuilds it exactly.

    Attributes:
        tuned: The data and training settings (``"train.lr"``) that `zoo tune` chose for this model (their
            values are in ``data`` and ``train``). They belong to the model, not to the setup: runs whose
            models were tuned to different learning rates are still ranked together (:meth:`setup_key`).
    """

    model: ModelSpec
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    tuned: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        values = {
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "seed": self.seed,
        }
        if self.tuned:  # absent otherwise: the JSON (and key) of an untuned run is what it was before
            values["tuned"] = list(self.tuned)
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunSpec":
        return cls(
            model=ModelSpec.from_mapping(values["model"]),
            data=DataConfig.from_mapping(values.get("data", {})),
            train=TrainConfig.from_mapping(values.get("train", {})),
            seed=SEED.validate(values.get("seed", 0), "run"),
            tuned=_tuned_settings(values.get("tuned", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.from_dict(json.loads(text))

    def key(self) -> str:
        """A stable hash of everything but the model's display name and description.

        Two runs with the same key train the same thing, which lets ``zoo rank``
        skip runs that already finished.
        """
        values = self._keyed_values()
        values["model"].pop("name", None)
        values["model"].pop("description", None)
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]

    def setup_key(self) -> str:
        """A stable hash of the setup: the data and training settings, everything but the model and the seed.

        Only runs with the same setup (and the same data, which the results
        database adds through the data's checksum) may be ranked together.
        """
        values = self._keyed_values()
        setup = {"data": values["data"], "train": values["train"]}
        for setting in self.tuned:  # a tuned setting is the model's own: the setup only says it was tuned
            section, _, name = setting.partition(".")
            setup[section].pop(name, None)
        if self.tuned:
            setup["tuned"] = sorted(self.tuned)
        return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:16]

    def _keyed_values(self) -> dict[str, Any]:
        values = self.to_dict()
        values["data"].pop("source", None)  # the same data found elsewhere is the same run
        for (section, name), default in SETTINGS_ADDED_LATER.items():
            if values[section].get(name) == default:
                del values[section][name]
        return values
