"""A leaky rate RNN with biological constraints (PsychRNN / nn4n style), trainable by every
rnntk trainer of the recurrent-model contract.

    tau dx/dt = -x + W_rec phi(x) + W_in u + b,     r = phi(x),     y = W_out r + b_out

Euler step ``x' = x + a (-x + W_rec r + W_in (u + s_in xi_in) + b) + sqrt(2a) s_rec xi_rec``
with ``a = dt/tau`` (``dt``, ``tau`` in seconds), ``xi ~ N(0, 1)`` per step, trial and unit;
``s_in = sqrt(2/a) input_noise``, ``s_rec = rec_noise`` (the convention of PsychRNN and Yang
et al. 2019: ``rec_noise`` is the stationary std of the recurrent noise on x). The contract's
``step``/``rhs`` are noise-free; :meth:`ConstrainedRNN.step_noisy` and ``forward(u, noise)``
add the noise drawn by :meth:`ConstrainedRNN.sample_noise`.

Constraints (exact, by construction, whatever the optimiser does to the free parameters):

* **Dale's law** (``dale_ratio=p``): the first ``round(p n)`` units are excitatory, the rest
  inhibitory; the effective ``W_rec[i, j]`` (from unit j to unit i) has the sign of column j
  (``dale_sign[j]`` = +1 / -1) or is 0. Magnitudes are trained through the absolute value of a
  free parameter: ``W_rec[i, j] = dale_sign[j] * |theta|``. ``W_in`` and ``W_out`` keep free
  signs (only masks apply to them).
* **Connectivity masks** ``mask_in (n, n_in)``, ``mask_rec (n, n)``, ``mask_out (n_out, n)``:
  from a density (each connection kept with that probability, a draw seeded by ``seed``) or
  from an ``.npz`` (keys ``mask_in``, ``mask_rec``, ``mask_out``, non-zero = connected; any
  key may be missing). ``autapses=False`` removes the diagonal of ``mask_rec``.
* **Fixed weights**: ``.npz`` keys ``fixed_in``, ``fixed_rec``, ``fixed_out`` (non-zero = held at
  its initial value), and optionally ``W_in``, ``W_rec``, ``W_out`` (initial values; they must
  respect the masks and Dale's signs).

The trained parameters ``theta_in``, ``theta_rec``, ``theta_out`` are flat vectors over the
connected, non-fixed entries only (row-major order of ``mask & ~fixed``), so a masked or fixed
direction has no parameter at all: SOFO draws no tangent component along it, Adam has no moment
for it. The state dict (``model.pt``, ``run.h5`` ``/model``) holds the EFFECTIVE matrices
``W_in``, ``W_rec``, ``W_out`` (authoritative on load), the masks, ``fixed_*`` and
``dale_sign``, and the free vectors (which only carry the sign gauge of ``theta`` for an exact
resume: loading sets ``theta = sign(theta) |W[free]|`` under Dale's law, ``W[free]`` without).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import torch
from torch import nn

_PHI = {
    "relu": (torch.relu, lambda x: (x > 0).to(x.dtype)),
    "softplus": (nn.functional.softplus, torch.sigmoid),
    "tanh": (torch.tanh, lambda x: 1.0 / torch.cosh(x.clamp(-44.0, 44.0)) ** 2),
}
BLOCKS = ("in", "rec", "out")
Connectivity = Union[None, float, str]


def dale_signs(n: int, dale_ratio: Optional[float]) -> torch.Tensor:
    """``(n,)`` column signs: +1 for the first ``round(dale_ratio n)`` units, -1 after (all +1
    without Dale's law)."""
    s = torch.ones(n)
    if dale_ratio is not None:
        s[int(round(dale_ratio * n)) :] = -1.0
    return s


def load_connectivity(path: Union[str, Path], shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Read a connectivity ``.npz`` (keys ``mask_*``, ``fixed_*``, ``W_*`` for ``*`` in in, rec,
    out; see the module doc) and check every array's shape against ``shapes`` (``mask_rec``:
    ``(n, n)``...). Unknown keys are an error (a typo must not silently train a full network)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"connectivity file {p} not found")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"connectivity file {p} is not a readable .npz ({e})") from None
    known = {f"{kind}_{b}" for kind in ("mask", "fixed") for b in BLOCKS} | {f"W_{b}" for b in BLOCKS}
    bad = sorted(set(data) - known)
    if bad:
        raise ValueError(f"connectivity file {p}: unknown key(s) {bad} (known: {sorted(known)})")
    for k, v in data.items():
        want = shapes[k.split("_", 1)[1]]
        if tuple(v.shape) != tuple(want):
            raise ValueError(f"connectivity file {p}: {k} has shape {tuple(v.shape)}, the network needs {tuple(want)}")
    return data


class ConstrainedRNN(nn.Module):
    """Leaky rate RNN with Dale's law, connectivity masks, no autapses, fixed weights and noise
    (see the module doc). ``forward(u, noise=None)`` with ``u (batch, time, n_in)`` returns
    ``(y (batch, time, n_out), r (batch, time, n))``.

    g: spectral radius of the initial effective ``W_rec`` (magnitudes ``|N(0, 1)|``, inhibitory
    columns scaled so that every row's expected E and I inputs balance, then rescaled).
    connectivity: None (all-to-all), a density in (0, 1], or the path of an ``.npz``.
    missing_connectivity_ok: the registry's rebuild (:func:`rebuild`) only: a missing ``.npz`` is
    then no error, since the state dict about to be loaded carries the masks.
    """

    time = "continuous"
    dale_sign: torch.Tensor
    mask_in: torch.Tensor
    mask_rec: torch.Tensor
    mask_out: torch.Tensor
    fixed_in: torch.Tensor
    fixed_rec: torch.Tensor
    fixed_out: torch.Tensor
    b: nn.Parameter
    b_out: nn.Parameter

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        dt: float = 0.01,
        tau: float = 0.1,
        g: float = 0.9,
        activation: str = "relu",
        dale_ratio: Optional[float] = None,
        connectivity: Connectivity = None,
        autapses: bool = True,
        rec_noise: float = 0.0,
        input_noise: float = 0.0,
        seed: int = 0,
        generator: Optional[torch.Generator] = None,
        missing_connectivity_ok: bool = False,
    ) -> None:
        super().__init__()
        if activation not in _PHI:
            raise ValueError(f"activation must be one of {sorted(_PHI)}")
        if dale_ratio is not None and not 0.0 <= dale_ratio <= 1.0:
            raise ValueError(f"bad dale_ratio {dale_ratio}: must be in [0, 1]")
        if not (0 < dt <= tau < math.inf):
            raise ValueError(f"need 0 < dt <= tau, got dt={dt}, tau={tau}")
        if not (rec_noise >= 0 and input_noise >= 0 and math.isfinite(rec_noise + input_noise)):
            raise ValueError("rec_noise and input_noise must be finite and >= 0")
        self.n_in, self.n_hidden, self.n_out = int(n_in), int(n_hidden), int(n_out)
        self.dt, self.tau, self.g, self.activation = float(dt), float(tau), float(g), activation
        self.dale_ratio = None if dale_ratio is None else float(dale_ratio)
        self.connectivity: Connectivity = connectivity if isinstance(connectivity, (str, type(None))) else float(connectivity)
        self.autapses, self.rec_noise, self.input_noise, self.seed = bool(autapses), float(rec_noise), float(input_noise), int(seed)
        n = self.n_hidden
        shapes = {"in": (n, self.n_in), "rec": (n, n), "out": (self.n_out, n)}
        masks = {b: torch.ones(s, dtype=torch.bool) for b, s in shapes.items()}
        fixed = {b: torch.zeros(s, dtype=torch.bool) for b, s in shapes.items()}
        given: dict[str, torch.Tensor] = {}
        if isinstance(connectivity, str):
            # rebuilding a saved model (missing_connectivity_ok): the masks come from its state dict
            data = {} if missing_connectivity_ok and not Path(connectivity).is_file() else load_connectivity(connectivity, shapes)
            for b in BLOCKS:
                if f"mask_{b}" in data:
                    masks[b] = torch.as_tensor(data[f"mask_{b}"] != 0)
                if f"fixed_{b}" in data:
                    fixed[b] = torch.as_tensor(data[f"fixed_{b}"] != 0)
                if f"W_{b}" in data:
                    given[b] = torch.as_tensor(data[f"W_{b}"], dtype=torch.float32)
        elif connectivity is not None:
            density = float(connectivity)
            if not 0.0 < density <= 1.0:
                raise ValueError(f"bad connectivity density {density}: must be in (0, 1]")
            mg = torch.Generator().manual_seed(self.seed)
            masks = {b: torch.rand(s, generator=mg) < density for b, s in shapes.items()}
        if not self.autapses:
            masks["rec"] = masks["rec"] & ~torch.eye(n, dtype=torch.bool)
        sign = dale_signs(n, self.dale_ratio)
        for b in BLOCKS:
            self.register_buffer(f"mask_{b}", masks[b])
            self.register_buffer(f"fixed_{b}", fixed[b] & masks[b])
        self.register_buffer("dale_sign", sign)
        init = self._init_weights(shapes, masks, sign, generator)
        for b, w in given.items():
            init[b] = w
        self._check_effective(init)
        for b in BLOCKS:
            self.register_buffer(f"_base_{b}", torch.zeros(shapes[b]), persistent=False)
            self.register_parameter(f"theta_{b}", nn.Parameter(torch.zeros(0)))
        self.set_effective(init, gauge=None)
        self.b = nn.Parameter(torch.zeros(n))
        self.b_out = nn.Parameter(torch.zeros(self.n_out))
        self._register_state_dict_hook(_add_effective)
        self._register_load_state_dict_pre_hook(self._load_effective)

    # ------------------------------------------------------------------ parametrisation
    def _init_weights(
        self, shapes: dict[str, tuple[int, ...]], masks: dict[str, torch.Tensor], sign: torch.Tensor, gen: Optional[torch.Generator]
    ) -> dict[str, torch.Tensor]:
        n = self.n_hidden
        rec = torch.randn(n, n, generator=gen)
        if self.dale_ratio is not None:
            rec = rec.abs() * sign
            n_e, n_i = int((sign > 0).sum()), int((sign < 0).sum())
            if n_e and n_i:
                rec[:, sign < 0] *= n_e / n_i  # balanced: E and I columns carry equal total weight
        rec = rec * masks["rec"]
        rho = float(torch.linalg.eigvals(rec.double()).abs().max()) if n else 0.0
        rec = rec * (self.g / rho if rho > 0 else 0.0)
        w_in = torch.randn(shapes["in"], generator=gen) / math.sqrt(max(self.n_in, 1)) * masks["in"]
        w_out = torch.randn(shapes["out"], generator=gen) / math.sqrt(n) * masks["out"]
        return {"in": w_in, "rec": rec, "out": w_out}

    def free_mask(self, block: str) -> torch.Tensor:
        """Bool ``(rows, cols)``: the trained entries of ``W_<block>`` (connected, not fixed)."""
        return getattr(self, f"mask_{block}") & ~getattr(self, f"fixed_{block}")

    def _check_effective(self, W: Mapping[str, torch.Tensor]) -> None:
        for b in BLOCKS:
            w = W[b]
            if bool((w[~getattr(self, f"mask_{b}")] != 0).any()):
                raise ValueError(f"W_{b} has non-zero weights outside mask_{b}")
        if self.dale_ratio is not None and bool((W["rec"] * self.dale_sign < 0).any()):
            raise ValueError("W_rec breaks Dale's law: a weight has the opposite sign of its column's unit (dale_sign)")

    def set_effective(self, W: Mapping[str, torch.Tensor], gauge: Optional[Mapping[str, torch.Tensor]] = None) -> None:
        """Set theta and the fixed part from effective matrices ``W["in" | "rec" | "out"]`` (which
        must respect the masks and signs; ``gauge``: theta whose signs to keep under Dale's law)."""
        self._check_effective(W)
        for b in BLOCKS:
            free = self.free_mask(b)
            w = W[b].to(getattr(self, f"_base_{b}").dtype)
            getattr(self, f"_base_{b}").copy_(w * getattr(self, f"fixed_{b}"))
            vals = w[free]
            if b == "rec" and self.dale_ratio is not None:
                vals = vals.abs()
                if gauge is not None and gauge[b].shape == vals.shape:
                    vals = torch.where(gauge[b] < 0, -vals, vals)
            p = getattr(self, f"theta_{b}")
            if p.shape != vals.shape:
                setattr(self, f"theta_{b}", nn.Parameter(vals.clone().to(p.dtype), requires_grad=p.requires_grad))
            else:
                with torch.no_grad():
                    p.copy_(vals)

    def effective(self, params: Optional[Mapping[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """``{"W_in", "W_rec", "W_out"}``: the effective matrices from the free vectors
        (``params``: ``theta_*`` to use instead of the model's own, e.g. for ``torch.func``)."""
        out = {}
        for b in BLOCKS:
            theta = getattr(self, f"theta_{b}") if params is None else params[f"theta_{b}"]
            if b == "rec" and self.dale_ratio is not None:
                theta = theta.abs() * self._col_sign()
            base = getattr(self, f"_base_{b}")
            out[f"W_{b}"] = base.reshape(-1).index_put((self._flat_index(b),), theta, accumulate=True).reshape(base.shape)
        return out

    def _col_sign(self) -> torch.Tensor:
        """``dale_sign`` of the column of each free ``W_rec`` entry (flat, theta's order)."""
        cols = self._flat_index("rec") % self.n_hidden
        return self.dale_sign[cols]

    def _flat_index(self, block: str) -> torch.Tensor:
        return self.free_mask(block).reshape(-1).nonzero().reshape(-1)

    def push_tangent(self, V: Mapping[str, torch.Tensor], params: Optional[Mapping[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """The analytic forward derivative of :meth:`effective`: tangents ``V["theta_*"] (K, nnz)``
        -> ``dW_* (K, rows, cols)``, zero on every masked or fixed entry; under Dale's law
        ``dW_rec = dale_sign[col] sign(theta) dtheta`` (tested equal to ``vmap(jvp)``)."""
        out = {}
        for b in BLOCKS:
            v = V[f"theta_{b}"]
            if b == "rec" and self.dale_ratio is not None:
                theta = getattr(self, f"theta_{b}") if params is None else params[f"theta_{b}"]
                v = v * (torch.sign(theta) * self._col_sign())
            base = getattr(self, f"_base_{b}")
            K = v.shape[0]
            z = torch.zeros(K, base.numel(), dtype=v.dtype, device=v.device)
            out[f"W_{b}"] = z.index_copy(1, self._flat_index(b), v).reshape(K, *base.shape)
        return out

    def _load_effective(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Load hook: masks first, then theta from the effective matrices (authoritative)."""
        for b in BLOCKS:
            for kind in ("mask", "fixed"):
                k = f"{prefix}{kind}_{b}"
                if k in state_dict:
                    getattr(self, f"{kind}_{b}").copy_(state_dict[k].to(torch.bool))
        if f"{prefix}dale_sign" in state_dict:
            self.dale_sign.copy_(state_dict[f"{prefix}dale_sign"])
        if all(f"{prefix}W_{b}" in state_dict for b in BLOCKS):
            W = {b: state_dict.pop(f"{prefix}W_{b}").detach() for b in BLOCKS}
            self._check_effective(W)
            gauge = {b: state_dict[f"{prefix}theta_{b}"] for b in BLOCKS if f"{prefix}theta_{b}" in state_dict}
            self.set_effective(W, gauge if len(gauge) == 3 else None)
            for b in BLOCKS:
                state_dict[f"{prefix}theta_{b}"] = getattr(self, f"theta_{b}").detach().clone()

    # ------------------------------------------------------------------ the contract
    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able; checkpoints and ``run.h5`` ``/model``)."""
        return dict(
            n_in=self.n_in,
            n_hidden=self.n_hidden,
            n_out=self.n_out,
            dt=self.dt,
            tau=self.tau,
            g=self.g,
            activation=self.activation,
            dale_ratio=self.dale_ratio,
            connectivity=self.connectivity,
            autapses=self.autapses,
            rec_noise=self.rec_noise,
            input_noise=self.input_noise,
            seed=self.seed,
        )

    @property
    def n(self) -> int:
        return self.n_hidden

    @property
    def alpha(self) -> float:
        """``dt / tau``."""
        return self.dt / self.tau

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero currents ``(batch, n)``."""
        return torch.zeros(batch, self.n_hidden, dtype=self.b.dtype, device=self.b.device)

    def rhs(self, x: torch.Tensor, u: Optional[torch.Tensor], params: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """``F(x, u) = -x + W_rec phi(x) + W_in u + b`` ``(batch, n)`` (``tau dx/dt = F``)."""
        W = self.effective(params)
        b = self.b if params is None else params.get("b", self.b)
        drive = b if u is None else u @ W["W_in"].T + b
        return -x + _PHI[self.activation][0](x) @ W["W_rec"].T + drive

    def step(self, x: torch.Tensor, u: Optional[torch.Tensor]) -> torch.Tensor:
        """Noise-free Euler step ``x + dt/tau F(x, u)``: ``x (batch, n)``, ``u (batch, n_in)`` or None."""
        return x + self.alpha * self.rhs(x, u)

    def readout(self, x: torch.Tensor, params: Optional[Mapping[str, torch.Tensor]] = None) -> torch.Tensor:
        """``y = W_out phi(x) + b_out`` ``(batch, n_out)``."""
        b_out = self.b_out if params is None else params.get("b_out", self.b_out)
        return _PHI[self.activation][0](x) @ self.effective(params)["W_out"].T + b_out

    def step_output(
        self, params: Mapping[str, torch.Tensor], x: torch.Tensor, u: Optional[torch.Tensor], xi: Optional[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Functional step for forward-mode trainers (SOFO): ``params`` (``theta_*``, ``b``,
        ``b_out``) -> ``(x' (batch, n), y' = readout(x') (batch, n_out))``, with noise ``xi``."""
        x1 = self.step_noisy(x, u, xi, params)
        return x1, self.readout(x1, params)

    def tangent_step(
        self,
        params: Mapping[str, torch.Tensor],
        x: torch.Tensor,
        dx: torch.Tensor,
        V: Mapping[str, torch.Tensor],
        u: Optional[torch.Tensor],
        xi: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hand-written K-batched forward tangents of :meth:`step_output` (SOFO's tangent-step
        contract): ``dx (K, batch, n)``, ``V`` tangents of ``params`` ``(K, *shape)`` (all of
        ``theta_*``, ``b``, ``b_out``) -> ``(x', y', dx', dy')``. The parameter tangents reach the
        weights through :meth:`push_tangent`, so they vanish on masked and fixed entries and keep
        Dale's signs. Tested equal to ``vmap(jvp)`` of :meth:`step_output`."""
        phi, dphi = _PHI[self.activation]
        a = self.alpha
        W, dW = self.effective(params), self.push_tangent(V, params)
        if xi is not None and u is not None and self.input_noise > 0:
            u = u + math.sqrt(2.0 / a) * self.input_noise * xi[:, self.n_hidden :]
        r = phi(x)
        drive = -x + r @ W["W_rec"].T + params["b"]
        ddrive = -dx + (dphi(x) * dx) @ W["W_rec"].T + torch.einsum("bj,kij->kbi", r, dW["W_rec"]) + V["b"][:, None, :]
        if u is not None:
            drive = drive + u @ W["W_in"].T
            ddrive = ddrive + torch.einsum("bj,kij->kbi", u, dW["W_in"])
        x1 = x + a * drive
        if xi is not None and self.rec_noise > 0:
            x1 = x1 + math.sqrt(2.0 * a) * self.rec_noise * xi[:, : self.n_hidden]
        dx1 = dx + a * ddrive
        r1 = phi(x1)
        y1 = r1 @ W["W_out"].T + params["b_out"]
        dy1 = (dphi(x1) * dx1) @ W["W_out"].T + torch.einsum("bj,kij->kbi", r1, dW["W_out"]) + V["b_out"][:, None, :]
        return x1, y1, dx1, dy1

    def fit_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Resize the free vectors to the masks a state dict carries (before a strict load, when
        the masks of the rebuilt model differ, e.g. a connectivity .npz absent at rebuild)."""
        for b in BLOCKS:
            m, f = state_dict.get(f"mask_{b}"), state_dict.get(f"fixed_{b}")
            if m is None or f is None or tuple(m.shape) != tuple(getattr(self, f"mask_{b}").shape) or m.shape != f.shape:
                continue  # a strict load reports the mismatch
            getattr(self, f"mask_{b}").copy_(m.to(torch.bool))
            getattr(self, f"fixed_{b}").copy_(f.to(torch.bool))
            nnz = int(self.free_mask(b).sum())
            p = getattr(self, f"theta_{b}")
            if p.numel() != nnz:
                setattr(self, f"theta_{b}", nn.Parameter(torch.zeros(nnz, dtype=p.dtype, device=p.device), requires_grad=p.requires_grad))

    def tangent(self, x: torch.Tensor, Q: torch.Tensor, u: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``A Q`` with ``A = (1 - a) I + a W_rec diag(phi'(x))``; ``Q (batch, n, k)``."""
        W = self.effective()["W_rec"]
        d = _PHI[self.activation][1](x)
        return (1 - self.alpha) * Q + self.alpha * torch.einsum("ij,bjk->bik", W, d[:, :, None] * Q)

    def recurrent_weight(self) -> torch.Tensor:
        """The effective ``W_rec (n, n)``."""
        return self.effective()["W_rec"]

    # ------------------------------------------------------------------ noise and rollout
    def sample_noise(self, batch: int, steps: int, generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
        """Standard normals ``(batch, steps, n + n_in)`` (recurrent, then input), or None when
        both noise levels are 0. Drawn on the generator's device."""
        if self.rec_noise == 0 and self.input_noise == 0:
            return None
        dev = generator.device if generator is not None else self.b.device
        return torch.randn(batch, steps, self.n_hidden + self.n_in, generator=generator, device=dev).to(self.b.device, self.b.dtype)

    def step_noisy(
        self, x: torch.Tensor, u: Optional[torch.Tensor], xi: Optional[torch.Tensor], params: Optional[Mapping[str, torch.Tensor]] = None
    ) -> torch.Tensor:
        """One Euler–Maruyama step with the standard normals ``xi (batch, n + n_in)`` (or None)."""
        a = self.alpha
        if xi is not None and u is not None and self.input_noise > 0:
            u = u + math.sqrt(2.0 / a) * self.input_noise * xi[:, self.n_hidden :]
        x1 = x + a * self.rhs(x, u, params)
        if xi is not None and self.rec_noise > 0:
            x1 = x1 + math.sqrt(2.0 * a) * self.rec_noise * xi[:, : self.n_hidden]
        return x1

    def forward(self, u: torch.Tensor, noise: Optional[torch.Tensor] = None, x0: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``u (batch, T, n_in)``, ``noise`` from :meth:`sample_noise` or None -> ``(y (B, T, n_out), r (B, T, n))``:
        the outputs and rates after each step."""
        B, T, _ = u.shape
        x = self.initial_state(B).to(u.dtype) if x0 is None else x0
        phi = _PHI[self.activation][0]
        W = self.effective()
        rates = []
        for t in range(T):
            x = self.step_noisy(x, u[:, t], None if noise is None else noise[:, t])
            rates.append(phi(x))
        r = torch.stack(rates, 1)
        return r @ W["W_out"].T + self.b_out, r


def rebuild(**hparams: Any) -> ConstrainedRNN:
    """The registry's builder: :class:`ConstrainedRNN` from stored ``hparams``, its connectivity
    ``.npz`` optional (the masks are in the state dict that :func:`~rnntk.core.models.load_model` loads)."""
    return ConstrainedRNN(**hparams, missing_connectivity_ok=True)


def _add_effective(module: ConstrainedRNN, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict hook: the effective ``W_in``, ``W_rec``, ``W_out`` beside the free vectors."""
    with torch.no_grad():
        for k, w in module.effective().items():
            state_dict[prefix + k] = w.detach()
