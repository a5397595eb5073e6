"""Task-stacked functional MLP with hand-derived batched gradient and Hessian-vector product.
The forward pass, the gradient, the linearization and the R-passes share one layer bookkeeping and
the derivation below, and are tested against autograd together.
The data it reads (``Data``) and what its linearization keeps (``Linearization``) are in ``interface``.

Parameters of B tasks are one tensor ``u`` of shape ``[B, P]`` (a flat vector per
task); layer ``l`` reads its weight ``W_l [B, n_in, n_out]`` and bias ``b_l
[B, n_out]`` as views into it, and every layer runs as one batched matmul for
all tasks.  The loss of task b is the weighted squared error

    L_b(u) = sum_n w_bn (f(u_b, x_bn) - y_bn)^2 ,

with ``w_bn = 1 / n_b`` on real examples and 0 on padding (a mean squared error).

Notation for one task (layers l = 0..L-1, a_0 = x):
    z_l = a_l W_l + b_l,  a_{l+1} = s(z_l) for hidden layers,  f = z_{L-1}.
Backward: d_{L-1} = 2 w (f - y);  dW_l = a_l^T d_l;  db_l = sum_n d_l;
          e_l = d_l W_l^T (= dL/da_l);  d_{l-1} = e_l * s'(z_{l-1}).
The Hessian-vector product H v is the directional derivative R{.} of that
gradient along v (Pearlmutter's R-operator):
    R a_0 = 0;  R z_l = R a_l W_l + a_l V_l + Vb_l;  R a_{l+1} = s'(z_l) R z_l;
    R d_{L-1} = 2 w R f;  R dW_l = R a_l^T d_l + a_l^T R d_l;  R db_l = sum_n R d_l;
    R e_l = R d_l W_l^T + d_l V_l^T;  R d_{l-1} = R e_l s'(z_{l-1}) + c_l R z_{l-1},
where c_l = e_l s''(z_{l-1}).  With a = s(z), s' and s''/s' are functions of a
(tanh: 1 - a^2 and -2a; sigmoid: a(1 - a) and 1 - 2a; relu: [a > 0] and 0), so
c_l = d_{l-1} * (s''/s')(a_l) needs no extra pass.

A *linearization* at u keeps a_l, s'(z) and d_l, c_l from one forward and
backward pass; every Hessian-vector product at u then costs only the two R
passes.  Everything is built from differentiable torch ops, so autograd can also
differentiate *through* ``grad`` (unrolled MAML uses that).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from adjoint_meta.interface import Data, Linearization, Lookup, linearized_grad_and_hvps

Tensor = torch.Tensor


def _tanh_slope(a: Tensor) -> Tensor:
    return torch.addcmul(_one(a), a, a, value=-1.0)          # 1 - a^2


def _tanh_curv(d: Tensor, a: Tensor) -> Tensor:
    return torch.addcmul(_zero(a), d, a, value=-2.0)         # d * (-2a)


def _sigmoid_slope(a: Tensor) -> Tensor:
    return torch.addcmul(a, a, a, value=-1.0)                # a (1 - a)


def _sigmoid_curv(d: Tensor, a: Tensor) -> Tensor:
    return torch.addcmul(d, d, a, value=-2.0)                # d * (1 - 2a)


_CONSTANTS: dict = {}


def _constant(value: float, a: Tensor) -> Tensor:
    """A cached 0-d tensor of a's dtype and device (cheaper than a Python scalar operand)."""
    key = (value, a.dtype, a.device)
    if key not in _CONSTANTS:
        with torch.inference_mode(False):  # a normal tensor: usable in inference mode and by autograd
            _CONSTANTS[key] = torch.full((), value, dtype=a.dtype, device=a.device)
    return _CONSTANTS[key]


def _one(a: Tensor) -> Tensor:
    return _constant(1.0, a)


def _minus_one(a: Tensor) -> Tensor:
    return _constant(-1.0, a)


def _zero(a: Tensor) -> Tensor:
    return _constant(0.0, a)


def _relu_slope(a: Tensor) -> Tensor:
    return (a > 0).to(a.dtype)


def _tanh_of_double(z2: Tensor) -> Tensor:
    """tanh(z) from z2 = 2z as 2 sigmoid(2z) - 1: the same function (float64 difference ~1e-16),
    but PyTorch's CPU sigmoid is several times faster than its tanh at these sizes
    (docs/performance.md).  Overwrites z2, a fresh pre-activation (see ACTIVATIONS)."""
    return torch.add(_minus_one(z2), z2.sigmoid_(), alpha=2.0)


def _row_dot(a: Tensor, W: Tensor) -> Tensor:
    """``a @ W`` for a one-column ``W [B, n, 1]``, as a broadcast product and a sum.

    The output layer has one unit, so its products (a W, d W^T, a^T d and their R
    counterparts) are matrix-vector and outer products, cheaper at these sizes as
    elementwise operations than as batched matmul calls (docs/performance.md).
    """
    return (a * W.transpose(1, 2)).sum(-1, keepdim=True)


# activation: (c, f, slope, curv) where s(z) = f(c z); the layer computes c z directly (through
# baddbmm's alpha and beta) and f overwrites that fresh pre-activation, which nothing else keeps
# (autograd saves the activation's output, so unrolled MAML still differentiates it).  The
# derivatives are written through a = s(z): slope(a) = s'(z) and curv(d, a) = d * s''(z)/s'(z),
# one tensor operation each; curv is None where s'' = 0
Activation = tuple[float, Callable[[Tensor], Tensor], Callable[[Tensor], Tensor],
                   Callable[[Tensor, Tensor], Tensor] | None]
ACTIVATIONS: dict[str, Activation] = {
    "tanh": (2.0, _tanh_of_double, _tanh_slope, _tanh_curv),
    "sigmoid": (1.0, torch.sigmoid_, _sigmoid_slope, _sigmoid_curv),
    "relu": (1.0, torch.relu_, _relu_slope, None),
}


def _gather_rows(W: Tensor, lookup: Lookup) -> Tensor:
    """``x W`` of the first layer for one-hot x (``[B, N, n_out]``): each example's row of W.
    (Dense inputs keep the fused ``baddbmm`` with the bias.)"""
    return torch.gather(W, 1, lookup[0])


def _first_weight_grad(x_t: Tensor, d: Tensor, lookup: Lookup | None) -> Tensor:
    """``x^T d`` of the first layer, flattened to ``[B, n_in * n_out]``: for one-hot inputs each
    example's row of d is added into its item's row."""
    if lookup is None:
        return torch.bmm(x_t, d).flatten(1)
    return d.new_zeros(d.shape[0], x_t.shape[1] * d.shape[2]).scatter_add_(1, lookup[1], d.reshape(d.shape[0], -1))


class MLP:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]`` acting on stacked task parameters."""

    def __init__(self, sizes: list[int], activation: str = "tanh"):
        if len(sizes) < 2 or sizes[-1] != 1:
            raise ValueError(f"MLP sizes must go from the input size to 1 output, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}; allowed values: {', '.join(ACTIVATIONS)}")
        self.sizes = list(sizes)
        self.activation = activation
        self._act_scale, self._act, self._slope, self._curv = ACTIVATIONS[activation]
        self.layers: list[tuple[int, int, int, int, int]] = []  # (w_start, b_start, end, n_in, n_out)
        off = 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.layers.append((off, off + n_in * n_out, off + n_in * n_out + n_out, n_in, n_out))
            off += n_in * n_out + n_out
        self.n_params = off
        self._split = [n for _, _, _, n_in, n_out in self.layers for n in (n_in * n_out, n_out)]
        self._compiled: dict[str, Callable] = {}  # filled by compile_passes()

    # -- parameters -------------------------------------------------------
    def init(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
        """PyTorch's default Linear initialization: U(-1/sqrt(n_in), 1/sqrt(n_in)) for W and b."""
        theta = torch.empty(self.n_params, dtype=torch.float64)
        for ws, _, end, n_in, _ in self.layers:
            bound = n_in ** -0.5
            theta[ws:end] = (torch.rand(end - ws, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return theta.to(dtype)

    def layer_index(self) -> Tensor:
        """The layer of each parameter ``[P]`` (0, 1, ...: a layer's weights and bias share one)."""
        return torch.cat([torch.full((end - ws,), l, dtype=torch.long)
                          for l, (ws, _, end, _, _) in enumerate(self.layers)])

    def unflatten(self, u: Tensor) -> list[tuple[Tensor, Tensor]]:
        parts = u.split(self._split, dim=1)
        return [(parts[2 * l].view(-1, n_in, n_out), parts[2 * l + 1])
                for l, (_, _, _, n_in, n_out) in enumerate(self.layers)]

    # -- forward ----------------------------------------------------------
    def _forward(self, params: list[tuple[Tensor, Tensor]], x: Tensor,
                 lookup: Lookup | None = None) -> list[Tensor]:
        """[a_0 = x, a_1, ..., a_{L-1}, f]; f has shape [B, N, 1]."""
        acts = [x]
        last = len(params) - 1
        c = self._act_scale
        for l, (W, b) in enumerate(params):
            if l == 0 and lookup is not None:  # never the output layer (see _lookup)
                z = _gather_rows(W, lookup).add_(b.unsqueeze(1))
                acts.append(self._act(z.mul_(c) if c != 1.0 else z))
            elif l < last:
                acts.append(self._act(torch.baddbmm(b.unsqueeze(1), acts[-1], W, beta=c, alpha=c)))
            else:
                acts.append(torch.add(_row_dot(acts[-1], W), b.unsqueeze(1)))
        return acts

    def predict(self, u: Tensor, x: Tensor) -> Tensor:
        return self._forward(self.unflatten(u), x)[-1].squeeze(-1)

    def loss(self, u: Tensor, data: Data) -> Tensor:
        r = self.predict(u, data.x) - data.y
        return (data.w * r * r).sum(1)

    # -- compilation --------------------------------------------------------
    def compile_passes(self) -> MLP:
        """Run the three passes (gradient and loss; linearization; Hessian-vector product)
        through ``torch.compile``.  Inductor fuses their elementwise work into generated C++
        kernels and, with its C++ wrapper, calls them without a Python layer in between; each
        compiled function returns only tensors it computes (the views a Linearization carries
        are made outside), which is what lets it pay on small inputs.  Compiled once per input
        shape in a process (kernels are cached on disk across processes); the results equal
        the eager ones to rounding.  ``runtime.compile`` switches it on for training;
        benchmarks/bench_compile.py measures what it gains and costs.  Passes that autograd
        must differentiate (unrolled MAML) stay eager."""
        import torch._dynamo

        config = torch._dynamo.config
        limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, limit, max(getattr(config, limit), 64))  # a job meets a handful of shapes
        for name, fn in (("first_order", self._first_order), ("linearization", self._linearization),
                         ("hvp", self._hvp)):
            self._compiled[name] = torch.compile(fn, dynamic=False, options={"cpp_wrapper": True})
        return self

    def _compiled_pass(self, name: str, u: Tensor) -> Callable | None:
        """The compiled pass ``name``; None when there is none or autograd records through u."""
        if u.requires_grad and torch.is_grad_enabled():
            return None
        return self._compiled.get(name)

    # -- first order ------------------------------------------------------
    def _passes(self, u: Tensor, x: Tensor, y3: Tensor, w2: Tensor, keep: bool, with_loss: bool,
                with_grad: bool, lookup: Lookup | None = None) -> tuple:
        """One forward and backward pass on plain tensors; with ``keep`` also what an HVP at u
        needs.  Returns Linearization's fields after u."""
        params = self.unflatten(u)
        acts = self._forward(params, x, lookup)
        r = acts[-1] - y3
        d = r * w2
        loss = (d * r).sum((1, 2)) * 0.5 if with_loss else None
        L = len(params)
        pieces: list[Tensor] = [None] * (2 * L)  # type: ignore[list-item]
        deltas: list[Tensor] = [None] * L  # type: ignore[list-item]
        slopes: list[Tensor | None] = [None] * L
        curv: list[Tensor | None] = [None] * L
        acts_t = [a.transpose(1, 2) for a in acts[:-1]]
        weights_t: list[Tensor] = [None] * L  # type: ignore[list-item]
        for l in range(L - 1, -1, -1):
            out = l == L - 1
            if with_grad:
                if out:
                    pieces[2 * l] = (acts[l] * d).sum(1)
                elif l == 0:
                    pieces[0] = _first_weight_grad(acts_t[0], d, lookup)
                else:
                    pieces[2 * l] = torch.bmm(acts_t[l], d).flatten(1)
                pieces[2 * l + 1] = d.sum(1)
            deltas[l] = d
            if l > 0:
                s1 = self._slope(acts[l])
                weights_t[l] = params[l][0].transpose(1, 2)
                d = (d * weights_t[l] if out else torch.bmm(d, weights_t[l])).mul_(s1)
                if keep:
                    slopes[l] = s1
                    curv[l] = None if self._curv is None else self._curv(d, acts[l])
        grad = torch.cat(pieces, dim=1) if with_grad else None
        return acts[:-1], slopes, deltas, curv, grad, loss, params, weights_t, acts_t

    def _first_order(self, u: Tensor, x: Tensor, y3: Tensor, w2: Tensor, with_loss: bool,
                     lookup: Lookup | None) -> tuple:
        """(gradient, loss or None): the pass without what an HVP would need."""
        fields = self._passes(u, x, y3, w2, False, with_loss, True, lookup)
        return fields[4], fields[5]

    def _linearization(self, u: Tensor, x: Tensor, y3: Tensor, w2: Tensor, with_loss: bool,
                       with_grad: bool, lookup: Lookup | None) -> tuple:
        """The computed fields of a linearization (hidden activations, slopes, deltas, curvatures,
        gradient, loss), without the input and the views, which ``linearize`` adds."""
        acts, slopes, deltas, curv, grad, loss = self._passes(u, x, y3, w2, True, with_loss, with_grad, lookup)[:6]
        return acts[1:], slopes, deltas, curv, grad, loss

    def loss_and_grad(self, u: Tensor, data: Data) -> tuple[Tensor, Tensor]:
        """Per-task losses ``[B]`` and gradients ``[B, P]``."""
        first_order = self._compiled_pass("first_order", u) or self._first_order
        grad, loss = first_order(u, data.x, data.y3, data.w2, True, self._lookup(data))
        return loss, grad

    def grad(self, u: Tensor, data: Data) -> Tensor:
        first_order = self._compiled_pass("first_order", u) or self._first_order
        return first_order(u, data.x, data.y3, data.w2, False, self._lookup(data))[0]

    def linearize(self, u: Tensor, data: Data, with_loss: bool = False, with_grad: bool = True) -> Linearization:
        """Gradient at u (unless ``with_grad`` is false) plus everything Hessian-vector products at u reuse."""
        compiled = self._compiled_pass("linearization", u)
        if compiled is None:  # eager: the pass makes the views anyway
            return Linearization(u, *self._passes(u, data.x, data.y3, data.w2, True, with_loss, with_grad,
                                                  self._lookup(data)))
        hidden, slopes, deltas, curv, grad, loss = compiled(u, data.x, data.y3, data.w2, with_loss, with_grad,
                                                            self._lookup(data))
        params = self.unflatten(u)
        acts = [data.x, *hidden]
        return Linearization(u, acts, slopes, deltas, curv, grad, loss, params,
                             [None, *(W.transpose(1, 2) for W, _ in params[1:])], [a.transpose(1, 2) for a in acts])

    # -- second order -----------------------------------------------------
    def grad_and_hvps(self, u: Tensor, vs: list[Tensor], data: Data) -> tuple[Tensor, list[Tensor]]:
        """The gradient at u and the products with each of ``vs`` (forward mode's step): the
        directional derivatives of one linearization."""
        return linearized_grad_and_hvps(self, u, vs, data)

    def hvp_at(self, lin: Linearization, v: Tensor, data: Data) -> Tensor:
        """Batched Hessian-vector product ``H_b(u_b) v_b`` at a linearization (two R passes)."""
        hvp = self._compiled_pass("hvp", v) or self._hvp
        return hvp(lin.acts, lin.slopes, lin.deltas, lin.curv, lin.params, lin.weights_t, lin.acts_t, v, data.w2,
                   self._lookup(data))

    def _hvp(self, acts: list[Tensor], slopes: list[Tensor | None], deltas: list[Tensor],
             curv: list[Tensor | None], params: list[tuple[Tensor, Tensor]], weights_t: list[Tensor],
             acts_t: list[Tensor], v: Tensor, w2: Tensor, lookup: Lookup | None = None) -> Tensor:
        """The product itself on plain tensors (what torch.compile traces)."""
        vparams = self.unflatten(v)
        L = len(params)
        # R-forward (in place wherever a temporary is not kept: fewer fresh buffers per product)
        Rz: list[Tensor] = [None] * L  # type: ignore[list-item]
        Ra: list[Tensor | None] = [None] * L
        for l in range(L - 1):
            V, Vb = vparams[l]
            rz = (_gather_rows(V, lookup).add_(Vb.unsqueeze(1)) if l == 0 and lookup is not None
                  else torch.baddbmm(Vb.unsqueeze(1), acts[l], V))
            if Ra[l] is not None:
                rz.baddbmm_(Ra[l], params[l][0])
            Rz[l] = rz
            Ra[l + 1] = slopes[l + 1] * rz
        V, Vb = vparams[-1]  # the one-unit output layer (see _row_dot)
        Vt = V.transpose(1, 2)
        rz = acts[-1] * Vt
        if Ra[-1] is not None:
            rz.addcmul_(Ra[-1], weights_t[-1])  # Ra[-1] exists only when L > 1
        Rz[-1] = rz.sum(-1, keepdim=True).add_(Vb.unsqueeze(1))
        # R-backward
        pieces: list[Tensor] = [None] * (2 * L)  # type: ignore[list-item]
        Rd = Rz[-1] * w2
        for l in range(L - 1, -1, -1):
            out = l == L - 1
            if out:
                gW = acts[l] * Rd
                if Ra[l] is not None:
                    gW.addcmul_(Ra[l], deltas[l])
                pieces[2 * l] = gW.sum(1)
            elif l == 0:  # R a_0 = 0
                pieces[0] = _first_weight_grad(acts_t[0], Rd, lookup)
            else:
                gW = torch.bmm(acts_t[l], Rd)
                if Ra[l] is not None:
                    gW.baddbmm_(Ra[l].transpose(1, 2), deltas[l])
                pieces[2 * l] = gW.flatten(1)
            pieces[2 * l + 1] = Rd.sum(1)
            if l > 0:
                if out:
                    Re = (Rd * weights_t[l]).addcmul_(deltas[l], Vt)
                else:
                    Re = torch.bmm(Rd, weights_t[l]).baddbmm_(deltas[l], vparams[l][0].transpose(1, 2))
                Rd = Re.mul_(slopes[l])
                if curv[l] is not None:
                    Rd.addcmul_(curv[l], Rz[l - 1])
        return torch.cat(pieces, dim=1)

    def _lookup(self, data: Data) -> Lookup | None:
        """The first layer's row lookups for one-hot data (None for dense inputs, or when the first
        layer is the output layer)."""
        return data.lookup(self.sizes[1]) if len(self.layers) > 1 else None

    def hvp(self, u: Tensor, v: Tensor, data: Data) -> Tensor:
        """Batched Hessian-vector product ``H_b(u_b) v_b`` of each task's loss, shape ``[B, P]``."""
        return self.hvp_at(self.linearize(u, data), v, data)
