"""The recurrent-model contract and the model registry.

Every rnntk recurrent model speaks :class:`RecurrentModel`, directly or through a small adapter
(:func:`as_recurrent_model`), so that what one method trains, every analysis can read:

* ``step(x, u) -> x_next``: ``x (batch, n)``, ``u (batch, n_in)`` or ``None``, ``x_next (batch, n)``;
* ``readout(x) -> y (batch, n_out)``; ``n``, ``n_in``, ``n_out`` (ints);
* ``time``: ``"discrete"`` or ``"continuous"``; a continuous model (:class:`ContinuousModel`) also
  has ``dt`` and ``tau`` in seconds and ``rhs(x, u) -> F (batch, n)`` with ``tau dx/dt = F(x, u)``;
* optionally (:class:`TangentModel`) an analytic ``tangent(x, Q, u) -> A Q`` for ``Q (batch, n, k)``,
  ``A = d step(x, u) / dx`` at the state ``x`` the step starts from (:func:`tangent` falls back to
  forward-mode autograd, batched over the k columns);
* ``hparams() -> dict`` (JSON-able constructor arguments).

The registry maps the ``model_class`` name that checkpoints (``model.pt``: ``"model"``) and
``run.h5`` (``/model`` attrs ``model_class``, ``hparams``) store to the class, so any run's model
can be rebuilt by name: :func:`build_model`, :func:`load_model`. A slice registers its classes
with ``@register_model`` (or ``register_model(Cls)``) and its adapters with
``@register_adapter(Cls)`` in its ``contract`` module; :data:`PROVIDERS` lists those modules,
imported on first lookup only, so the core never imports a slice at import time.

A model made of recurrent layers in series (an ``online-lru`` stack) is a :class:`RecurrentStack`:
each layer speaks the contract and is analysed on its own, driven by what the layers below feed
it; :func:`as_recurrent_layers` gives every model as such a list (one layer for most). An adapter
may also expose the optional ``recurrent_weight() -> (n, n)`` (:class:`WeightModel`): the
state-independent matrix of its recurrence (the ``W`` that multiplies the activation).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

Time = Literal["discrete", "continuous"]


@runtime_checkable
class RecurrentModel(Protocol):
    """One step of a batched recurrent model (see the module doc for shapes)."""

    n: int
    n_in: int
    n_out: int
    time: Time

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        """``x (batch, n)``, ``u (batch, n_in)`` or None -> ``x_next (batch, n)``."""
        ...

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, n)`` -> ``y (batch, n_out)``."""
        ...

    def hparams(self) -> dict[str, Any]:
        """JSON-able constructor arguments."""
        ...


@runtime_checkable
class ContinuousModel(RecurrentModel, Protocol):
    """A continuous-time model, Euler-stepped: ``step(x, u) = x + dt/tau * rhs(x, u)`` for the
    leaky families (dt, tau in seconds)."""

    dt: float
    tau: float

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        """``F(x, u) (batch, n)`` with ``tau dx/dt = F(x, u)``."""
        ...


@runtime_checkable
class TangentModel(RecurrentModel, Protocol):
    """A model with an analytic tangent map."""

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``A Q (batch, n, k)`` for ``Q (batch, n, k)``, ``A = d step / dx`` at ``x (batch, n)``."""
        ...


@runtime_checkable
class WeightModel(RecurrentModel, Protocol):
    """A model whose recurrence has a state-independent linear operator (its recurrent weight)."""

    def recurrent_weight(self) -> torch.Tensor:
        """``(n, n)``: ``W`` with the recurrence ``... + W phi(x)`` acting on column states."""
        ...


@runtime_checkable
class RecurrentStack(Protocol):
    """Recurrent layers in series, each analysed on its own (see the module doc)."""

    n_in: int

    def layers(self) -> list[tuple[str, RecurrentModel]]:
        """``(name, layer)`` for each recurrent layer, input side first."""
        ...

    def layer_inputs(self, u: torch.Tensor) -> list[torch.Tensor]:
        """``u (batch, T, n_in)`` of the whole model -> each layer's input ``(batch, T, n_in_l)``."""
        ...


class _OneLayer:
    """A single recurrent model as a one-layer :class:`RecurrentStack`."""

    def __init__(self, model: RecurrentModel) -> None:
        self.model, self.n_in = model, model.n_in

    def layers(self) -> list[tuple[str, RecurrentModel]]:
        return [("", self.model)]

    def layer_inputs(self, u: torch.Tensor) -> list[torch.Tensor]:
        return [u]


def tangent(model: RecurrentModel, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``A Q`` by the model's analytic tangent when it has one, else by forward-mode autograd
    (``torch.func.jvp``, vmapped over the k columns of ``Q (batch, n, k)``)."""
    if isinstance(model, TangentModel):
        return model.tangent(x, Q, u)

    def jvp_col(q: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(lambda s: model.step(s, u), (x,), (q,))[1]

    return torch.func.vmap(jvp_col, in_dims=2, out_dims=2)(Q)


def euler_step(model: ContinuousModel, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
    """``x + dt/tau * rhs(x, u)``: the Euler step of a continuous model."""
    return x + model.dt / model.tau * model.rhs(x, u)


# ------------------------------------------------------------------ registry
_REGISTRY: dict[str, type] = {}
_BUILDERS: dict[str, Callable[..., Any]] = {}
_ADAPTERS: dict[type, Callable[[Any], Any]] = {}
PROVIDERS: tuple[str, ...] = ("rnntk.core.adapters", "rnntk.sofo.contract", "rnntk.online.contract", "rnntk.ode.contract", "rnntk.cordsnet.contract")
_loaded = False
C = TypeVar("C", bound=type)


def register_model(cls: Optional[C] = None, *, name: Optional[str] = None, build: Optional[Callable[..., Any]] = None) -> Any:
    """Register a model class under ``name`` (default: its ``__name__``, which is what checkpoints
    store as ``model_class``). Use as ``@register_model`` or ``register_model(Cls)``. ``build``:
    ``build(**hparams) -> model`` when the class itself does not take the stored ``hparams``."""

    def deco(c: C) -> C:
        key = name or c.__name__
        if key in _REGISTRY and _REGISTRY[key] is not c:
            raise ValueError(f"model_class {key!r} is registered twice ({_REGISTRY[key].__module__} and {c.__module__})")
        _REGISTRY[key] = c
        _BUILDERS[key] = build or c
        return c

    return deco(cls) if cls is not None else deco


def register_adapter(cls: type) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``fn(model) -> RecurrentModel`` (often the adapter class) that wraps instances of ``cls``."""

    def deco(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _ADAPTERS[cls] = fn
        return fn

    return deco


def _load_providers() -> None:
    global _loaded
    if not _loaded:
        for mod in PROVIDERS:
            importlib.import_module(mod)
        _loaded = True


def model_classes() -> dict[str, type]:
    """Every registered ``model_class`` name and its class."""
    _load_providers()
    return dict(_REGISTRY)


def as_recurrent_model(model: Any) -> RecurrentModel:
    """``model`` itself when it speaks the contract, else its registered adapter."""
    _load_providers()
    for klass in type(model).__mro__:
        if klass in _ADAPTERS:
            adapted: RecurrentModel = _ADAPTERS[klass](model)
            if isinstance(adapted, RecurrentStack) and not isinstance(adapted, RecurrentModel):
                raise TypeError(f"{type(model).__name__} is a stack of recurrent layers: take them from as_recurrent_layers")
            return adapted
    if isinstance(model, RecurrentModel):
        return model
    raise TypeError(f"{type(model).__name__} does not speak the recurrent-model contract and has no adapter")


def as_recurrent_layers(model: Any) -> RecurrentStack:
    """Every model as a :class:`RecurrentStack`: the registered adapter when it gives a stack,
    else the model (or its adapter) as a single layer."""
    _load_providers()
    for klass in type(model).__mro__:
        if klass in _ADAPTERS:
            adapted = _ADAPTERS[klass](model)
            return adapted if isinstance(adapted, RecurrentStack) else _OneLayer(adapted)
    return _OneLayer(as_recurrent_model(model))


def build_model(model_class: str, hparams: Mapping[str, Any], state_dict: Optional[Mapping[str, torch.Tensor]] = None) -> nn.Module:
    """Rebuild a model by its registered name from its ``hparams`` (constructor keywords) and,
    if given, load ``state_dict`` strictly (a mismatch is a one-line ``UserError``)."""
    from rnntk.engine.checkpoint import load_state_into
    from rnntk.engine.errors import UserError

    classes = model_classes()
    if model_class not in classes:
        raise UserError(f"unknown model_class {model_class!r} (known: {', '.join(sorted(classes))})")
    model = _BUILDERS[model_class](**dict(hparams))
    if state_dict is not None:
        _fit(model, state_dict)
        load_state_into(model, state_dict, source=f"{model_class} weights")
    return model


def _fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Let a model whose parameter shapes follow buffers of its state dict (e.g. the masks of
    :class:`~rnntk.core.constrained_rnn.ConstrainedRNN`) resize them before a strict load."""
    fit = getattr(model, "fit_state_dict", None)
    if callable(fit):
        fit(state_dict)


def load_model(path: Path | str) -> nn.Module:
    """Rebuild the model of an rnntk checkpoint (``*.pt``, ``weights_only=True``) or of a run
    file's ``/model`` group (``run.h5``: weights stored as plain arrays)."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if "model" not in f or "model_class" not in f["model"].attrs:
                from rnntk.engine.errors import UserError

                raise UserError(f"{path} has no /model group with a model_class")
            g: Any = f["model"]
            hp = json.loads(str(g.attrs["hparams"]))
            sd: dict[str, torch.Tensor] = {}
            g.visititems(lambda k, d: sd.__setitem__(k.replace("/", "."), torch.as_tensor(d[()])) if isinstance(d, h5py.Dataset) else None)
            name = str(g.attrs["model_class"])
            g_subgroups = {k for k in g if isinstance(g[k], h5py.Group)}
        model = build_model(name, hp)
        own = model.state_dict()
        # /model/<name>/... holds the other models of the run (save_model(name="adam_model")): not this one's
        sd = {k: v for k, v in sd.items() if k in own or k.split(".")[0] not in g_subgroups}
        sd = {k: v.to(own[k].dtype) if k in own else v for k, v in sd.items()}  # /model stores float32
        _fit(model, sd)
        from rnntk.engine.checkpoint import load_state_into

        load_state_into(model, sd, source=str(path))
        return model
    from rnntk.engine.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    return build_model(ck["model"], ck["hparams"], ck["state_dict"])
