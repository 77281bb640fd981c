"""Representation Regularisation via functional entropy (RRM) from RobustSeg, in two forms.

Paper: "Robust Multimodal Segmentation with Representation Regularization and Hybrid Prototype
Distillation", arXiv 2505.12861. The log-Sobolev inequality bounds the functional entropy of the
teacher-student discrepancy by its Fisher information; RRM maximises a Fisher information
estimated on noisy copies of the features, i.e. penalises its inverse. For one sample, stage and
pair (student slot ``s``, teacher modality ``m``), with ``f_S`` and ``f_T`` both ``[C, H, W]``:

**Noise** (both forms). ``n`` noisy copies ``x_i = f + sigma * eps_i`` (``eps`` standard normal,
independent for student and teacher; the teacher is detached, ``sigma`` is differentiable for the
student). ``noise_std="pixel"`` (released): ``sigma[h, w]`` is the Bessel-corrected std over the
``n*C`` tiled rows at that pixel, ``sqrt(n * sum_c (f_c - mean_c f)^2 / (n*C - 1))``, because the
release tiles ``f`` to ``[n*C, H*W]`` and takes ``std(dim=0)``. ``noise_std="map"``: the population
std of the whole map, one number.

**form="released"** (``mmkd/RUMD.py`` with ``mmkd/regularization.py``; default). The copies are
stacked to ``[n*C, H, W]``; ``l_S = log_softmax(x_S)`` and ``p_T = softmax(x_T)`` over the
*height* axis; one KL over all ``N = n*C*H*W`` entries (torch ``KLDivLoss(reduction="mean")``,
clamped at 0), ``KL = (1/N) sum p_T (log p_T - l_S)``; its gradient with respect to the softmax
*outputs* ``l_S`` and ``p_T``, ``g_S = -p_T / N`` and ``g_T = (log p_T + 1 - l_S) / N``; and
``I_x = mean_{rows, W} (sum_H g_x^2) / KL`` (``torch.norm(grad, dim=1)`` squared, divided by the
loss, averaged). Penalty ``lam * ||(1/I_S, 1/I_T)||_2``. In closed form::

    1/I_S = KL * N^2 / (H * mean p_T^2)             (mean over all N entries)
    1/I_T = KL * N^2 / (H * mean (log p_T + 1 - l_S)^2)

So the student-side term depends on the student only through ``KL``: the penalty grows with the
student-teacher discrepancy and roughly with ``N^2``, the square of the feature size (at the
published lambda 1e-5 it is orders of magnitude above the task loss; see the README).

**form="logit_grad"** (an earlier reading, kept for comparison). Per copy ``i``, softmax over
``axis`` (``channel``: ``H*W`` distributions of size C, or ``height``), ``D_i`` = the KL summed
over the softmax axis and averaged over the ``R`` distributions; gradients with respect to the
pre-softmax *inputs* ``x_i``: ``dD/dx_S = (p_S - p_T) / R``, ``dD/dx_T = p_T (log p_T - log p_S -
kl) / R``; ``G_x = mean_i ||dD_i/dx_i||^2``, ``1/I_x = mean_i D_i / (G_x + eps)``. Its values are
10^5 to 10^7 times smaller than the released form's and nearly flat in the discrepancy.

Both forms are written in closed form (no ``autograd.grad(create_graph=True)``): the penalty is
an ordinary differentiable function of the student features, so one backward pass suffices; a
test checks the closed forms against autograd and ``form="released"`` against values the
released code produced (``tests/test_released.py``).

The released form never materialises the ``n`` copies: its penalty needs three sums per pair, and
``_ReleasedSums`` takes them, with the sums the student gradient needs, over one cache-sized chunk of
copies at a time (``released_inverse_fisher`` is the direct version the tests compare against). The
noise itself is drawn as before, in full, stage by stage, student then teacher.

The loss sums the penalty over stages and pairs and divides by ``B`` (as released).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsbench.losses._pairing import PAIRINGS, draw_pair_table, stage_pair_indices
from rsbench.losses._registry import LOSSES

AXES = {"channel": -3, "height": -2}
FORMS = ("released", "logit_grad")
NOISE_STDS = ("pixel", "map")


VAR_EPS = 1e-12
"""Added to the variance under the square root: constant features (a zero-filled input through a
freshly initialised encoder gives exactly zero features) would otherwise give a NaN gradient of
sigma, as in the released code; 1e-12 moves sigma by < 1e-12 relative for unit-scale features."""


def noisy_copies(f: Tensor, noise: Tensor, noise_std: str = "pixel") -> Tensor:
    """``f [..., C, H, W]`` + sigma * ``noise [n, ..., C, H, W]`` (see the module doc for sigma)."""
    return f + noise_sigma(f, noise.shape[0], noise_std) * noise


def released_inverse_fisher(xs: Tensor, xt: Tensor) -> Tensor:
    """``(1/I_S, 1/I_T)`` of the released form from noisy copies ``[n, P, C, H, W]``: ``[P, 2]``."""
    n, _, c, h, w = xs.shape
    big_n = n * c * h * w
    log_s = F.log_softmax(xs, dim=-2)
    log_t = F.log_softmax(xt, dim=-2)
    p_t = log_t.exp()
    dims = (0, 2, 3, 4)
    kl = (p_t * (log_t - log_s)).sum(dim=dims).div(big_n).clamp(min=0)  # [P]
    a_s = p_t.pow(2).sum(dim=-2).mean(dim=(0, 2, 3)) / big_n**2  # mean over rows and W of sum_H g_S^2
    a_t = (log_t + 1 - log_s).pow(2).sum(dim=-2).mean(dim=(0, 2, 3)) / big_n**2
    return torch.stack([kl / a_s, kl / a_t], dim=-1)


def logit_grad_inverse_fisher(xs: Tensor, xt: Tensor, axis: str = "channel", eps: float = 1e-12) -> Tensor:
    """``(1/I_S, 1/I_T)`` of the ``logit_grad`` form from noisy copies ``[n, P, C, H, W]``: ``[P, 2]``."""
    dim, fdims = AXES[axis], (-3, -2, -1)
    c, h, w = xs.shape[-3:]
    n_dist = h * w if axis == "channel" else c * w
    d, gs, gt = kl_and_input_grads(xs, xt, dim, n_dist)
    d_bar = d.mean(0)
    inv_s = d_bar / (gs.pow(2).sum(dim=fdims).mean(0) + eps)
    inv_t = d_bar / (gt.pow(2).sum(dim=fdims).mean(0) + eps)
    return torch.stack([inv_s, inv_t], dim=-1)


CHUNK_ELEMENTS = 1 << 18
"""Elements per chunk of noisy copies on the CPU (1 MiB of float32): the dozen temporaries of one
chunk stay in a core's L2 cache, where a pass over the full ``n x P x C x H x W`` copies would go to
memory each time (measured 4x faster for the published configuration). Other devices take one chunk."""


class _ReleasedSums(torch.autograd.Function):
    """Per-pair sums of the released form over the noisy copies, and their student gradients in the same pass.

    With ``l_S = log_softmax_H(x_S)``, ``log p_T = log_softmax_H(x_T)`` and ``q_S = exp(l_S)``, per pair:
    ``S1 = sum p_T (log p_T - l_S)``, ``S2 = sum p_T^2`` and ``S3 = sum r^2`` with ``r = log p_T + 1 - l_S``.
    Their derivatives with respect to the copies are ``dS1/dx_S = q_S - p_T`` and ``dS3/dx_S = -2 (r -
    q_S sum_H r)`` (``S2`` is the teacher's alone). As ``x_S = f_S + sigma_S * eps``, the gradients reach
    ``f_S`` summed over the copies and ``sigma_S`` summed with ``eps`` over the copies and channels; the
    forward accumulates those four sums chunk by chunk, so nothing of copy size is kept for the backward.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        fs: Tensor,
        sigma_s: Tensor,
        ft: Tensor,
        sigma_t: Tensor,
        ns: Tensor,
        nt: Tensor,
        need_grad: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        n, p = ns.shape[:2]
        acc = torch.float64 if fs.device.type in ("cpu", "cuda") else fs.dtype  # MPS has no float64
        sums = torch.zeros(3, p, dtype=acc, device=fs.device)
        if need_grad:
            u1, u2 = torch.zeros_like(fs), torch.zeros_like(fs)
            v1 = fs.new_zeros(p, 1, *fs.shape[-2:])
            v2 = torch.zeros_like(v1)
        chans, per_chan = fs.shape[1], fs[0, 0].numel()
        limit = CHUNK_ELEMENTS if fs.device.type == "cpu" else n * p * chans * per_chan
        # chunk = copies x pairs x channels; the copies vary fastest, so a chunk's slice of the
        # gradient sums stays in cache while all its copies are added in
        cs = min(chans, max(1, limit // per_chan))
        ps = min(p, max(1, limit // (cs * per_chan)))
        ni = min(n, max(1, limit // (ps * cs * per_chan)))
        dims = (0, 2, 3, 4)
        buffers: dict[tuple[int, ...], list[Tensor]] = {}  # chunk-sized, reused: fresh ones cost page faults
        for j in range(0, p, ps):
            for k in range(0, chans, cs):
                sl, ch = slice(j, j + ps), slice(k, k + cs)
                f_s, f_t, sig_s, sig_t = fs[sl, ch], ft[sl, ch], sigma_s[sl], sigma_t[sl]
                for i in range(0, n, ni):
                    eps_s, eps_t = ns[i:i + ni, sl, ch], nt[i:i + ni, sl, ch]
                    shape = tuple(eps_s.shape)
                    if shape not in buffers:
                        buffers[shape] = [fs.new_empty(shape) for _ in range(4)]
                    x, l_s, d, p_t = buffers[shape]
                    torch.log_softmax(torch.addcmul(f_s, sig_s, eps_s, out=x), -2, out=l_s)
                    torch.log_softmax(torch.addcmul(f_t, sig_t, eps_t, out=x), -2, out=d)
                    torch.exp(d, out=p_t)
                    d.sub_(l_s)  # log p_T - l_S
                    part = [torch.mul(p_t, d, out=x).sum(dim=dims), torch.mul(p_t, p_t, out=x).sum(dim=dims)]
                    r = d.add_(1.0)
                    part.append(torch.mul(r, r, out=x).sum(dim=dims))
                    sums[:, sl] += torch.stack(part)
                    if need_grad:
                        q_s = l_s.exp_()
                        w2 = r.addcmul_(q_s, r.sum(dim=-2, keepdim=True), value=-1.0)  # r - q_S sum_H r
                        w1 = q_s.sub_(p_t)  # q_S - p_T
                        u1[sl, ch] += w1.sum(0) if len(w1) > 1 else w1[0]
                        u2[sl, ch] += w2.sum(0) if len(w2) > 1 else w2[0]
                        v1[sl] += w1.mul_(eps_s).sum(dim=(0, 2), keepdim=True)[0]
                        v2[sl] += w2.mul_(eps_s).sum(dim=(0, 2), keepdim=True)[0]
        s1, s2, s3 = sums.to(fs.dtype).unbind(0)
        ctx.mark_non_differentiable(s2)
        if need_grad:
            ctx.save_for_backward(u1, u2, v1, v2)
        ctx.sigma_shape = sigma_s.shape
        return s1, s2, s3

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g1: Tensor, _g2: Tensor, g3: Tensor
    ) -> tuple[Tensor | None, ...]:
        u1, u2, v1, v2 = ctx.saved_tensors
        c1, c3 = g1.view(-1, 1, 1, 1), -2.0 * g3.view(-1, 1, 1, 1)
        grad_f = c1 * u1 + c3 * u2
        grad_sigma = (c1 * v1 + c3 * v2).sum_to_size(ctx.sigma_shape)
        return grad_f, grad_sigma, None, None, None, None, None


def noise_sigma(f: Tensor, n: int, noise_std: str = "pixel") -> Tensor:
    """The noise scale of ``noisy_copies``: ``[..., 1, H, W]`` (``pixel``) or ``[..., 1, 1, 1]`` (``map``)."""
    c = f.shape[-3]
    if noise_std == "pixel":
        if n * c < 2:
            raise ValueError("per-pixel noise std needs n_samples * channels >= 2")
        # two passes rather than ``var(dim=-3)``: the same value, 8x faster over a non-last dim on the CPU
        var = (f - f.mean(dim=-3, keepdim=True)).square().mean(dim=-3, keepdim=True) * (n * c / (n * c - 1))
    elif noise_std == "map":
        var = f.var(dim=(-3, -2, -1), keepdim=True, correction=0)
    else:
        raise ValueError(f"unknown noise std {noise_std!r}; expected one of {NOISE_STDS}")
    return (var + VAR_EPS).sqrt()


def released_inverse_fisher_chunked(
    student: Tensor, teacher: Tensor, noise_s: Tensor, noise_t: Tensor, noise_std: str = "pixel"
) -> Tensor:
    """``released_inverse_fisher(noisy_copies(student, noise_s), noisy_copies(teacher, noise_t))`` without the copies.

    The same sums, taken one cache-sized chunk of copies at a time (``_ReleasedSums``): ``[P, 2]``.
    """
    n, _, c, h, w = noise_s.shape
    big_n = n * c * h * w
    teacher = teacher.detach()
    sigma_s, sigma_t = noise_sigma(student, n, noise_std), noise_sigma(teacher, n, noise_std)
    need_grad = torch.is_grad_enabled() and student.requires_grad
    s1, s2, s3 = _ReleasedSums.apply(student, sigma_s, teacher, sigma_t, noise_s, noise_t, need_grad)
    kl = (s1 / big_n).clamp(min=0)
    rows = n * c * w  # rows of the released [n*C, H, W] stack times W: the mean over them of sum_H g^2
    a_s = s2 / rows / big_n**2
    a_t = s3 / rows / big_n**2
    return torch.stack([kl / a_s, kl / a_t], dim=-1)


def rrm_inverse_fisher(
    student: Tensor,
    teacher: Tensor,
    noise_s: Tensor,
    noise_t: Tensor,
    axis: str = "height",
    eps: float = 1e-12,
    form: str = "released",
    noise_std: str = "pixel",
) -> Tensor:
    """Inverse Fisher information ``(1/I_S, 1/I_T)`` of paired features.

    Args:
        student, teacher: ``[P, C, H, W]`` paired features.
        noise_s, noise_t: ``[n, P, C, H, W]`` standard-normal noise.
        axis: softmax axis of the ``logit_grad`` form (``released`` is always ``height``).

    Returns:
        ``[P, 2]``; differentiable w.r.t. ``student`` when it requires grad (else detached).
    """
    if form not in FORMS:
        raise ValueError(f"unknown RRM form {form!r}; expected one of {FORMS}")
    if axis not in AXES:
        raise ValueError(f"unknown softmax axis {axis!r}; expected one of {tuple(AXES)}")
    if form == "released" and axis != "height":
        raise ValueError("the released RRM form takes its softmax over the height axis: use axis='height'")
    if student.shape != teacher.shape or noise_s.shape[1:] != student.shape or noise_t.shape != noise_s.shape:
        raise ValueError("student, teacher and noise shapes do not match")
    if form == "released":
        return released_inverse_fisher_chunked(student, teacher, noise_s, noise_t, noise_std)
    xs = noisy_copies(student, noise_s, noise_std)
    xt = noisy_copies(teacher.detach(), noise_t, noise_std)
    return logit_grad_inverse_fisher(xs, xt, axis, eps)


def kl_and_input_grads(xs: Tensor, xt: Tensor, dim: int, n_dist: int) -> tuple[Tensor, Tensor, Tensor]:
    """``logit_grad`` form: ``D = KL(softmax(xt) || softmax(xs))`` per copy, ``dD/dxs`` and ``dD/dxt``.

    With ``g = log p_t - log p_s`` and per-distribution ``kl = sum(p_t * g)`` over the softmax axis:
    ``dD/dxs = (p_s - p_t) / R`` and ``dD/dxt = p_t * (g - kl) / R`` (a test checks them against autograd).

    Returns:
        ``D`` with the last three dims reduced, and the two gradients shaped like the inputs.
    """
    log_s = F.log_softmax(xs, dim=dim)
    log_t = F.log_softmax(xt, dim=dim)
    p_t = log_t.exp()
    g = log_t - log_s
    kl = (p_t * g).sum(dim=dim, keepdim=True)
    d = kl.sum(dim=(-3, -2, -1)) / n_dist
    return d, (log_s.exp() - p_t) / n_dist, p_t * (g - kl) / n_dist


def rrm_loss(
    student_feats: Sequence[Tensor],
    teacher_feats: Sequence[Tensor],
    pairing: str | Tensor = "same",
    n_samples: int = 10,
    axis: str = "height",
    lam: float = 1e-5,
    generator: torch.Generator | None = None,
    noise: Sequence[tuple[Tensor, Tensor]] | None = None,
    eps: float = 1e-12,
    form: str = "released",
    noise_std: str = "pixel",
    slot_present: Tensor | None = None,
) -> Tensor:
    """RRM penalty over all stages, vectorised over the pairs and noisy copies.

    Args:
        student_feats, teacher_feats: per stage ``[B, M, C_j, H_j, W_j]``.
        pairing: a scheme of ``PAIRINGS``, an ``[M]`` draw or a ``[B, S, M]`` pair table.
        noise: optional per-stage ``(noise_s, noise_t)``, each ``[n, P_j, C_j, H_j, W_j]`` for the
            stage's ``P_j`` pairs in ``pair_indices`` order; when omitted, drawn from ``generator``
            after the pairing: stage by stage, student then teacher.
        slot_present: bool ``[M]``, student slots holding features; pairs on other slots skipped.

    Returns:
        Scalar: ``lam * ||(1/I_S, 1/I_T)||_2`` summed over stages and pairs, divided by ``B``.
    """
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f"{len(student_feats)} student stages vs {len(teacher_feats)} teacher stages")
    b, m = teacher_feats[0].shape[:2]
    table = draw_pair_table(pairing, b, len(teacher_feats), m, generator)
    pairs = stage_pair_indices(table, slot_present, teacher_feats[0].device)
    total = teacher_feats[0].new_zeros(())
    for j, (fs, ft, (bi, si, ti)) in enumerate(zip(student_feats, teacher_feats, pairs, strict=True)):
        if bi.numel() == 0:
            continue
        ps, pt = fs[bi, si], ft[bi, ti]
        if noise is None:
            gen_device = generator.device if generator is not None else fs.device
            shape = (n_samples, *pt.shape)
            ns = torch.randn(shape, generator=generator, device=gen_device, dtype=fs.dtype).to(fs.device)
            nt = torch.randn(shape, generator=generator, device=gen_device, dtype=fs.dtype).to(fs.device)
        else:
            ns, nt = noise[j]
        inv = rrm_inverse_fisher(ps, pt, ns, nt, axis, eps, form, noise_std)  # [P, 2]
        total = total + torch.linalg.vector_norm(inv, dim=-1).sum()
    return lam * total / b


@LOSSES.register("rrm")
class RRMLoss(nn.Module):
    """RRM module; ``forward(student_feats, teacher_feats, generator, pairing, noise, slot_present)``."""

    consumes = {"student_feats": "features", "teacher_feats": "teacher_features", "generator": "noise_generator",
                "pairing": "pairing", "slot_present": "slot_present"}
    """Step inputs passed to ``forward``, by parameter name (``rsbench.training.step``)."""

    def __init__(
        self,
        pairing: str = "same",
        n_samples: int = 10,
        axis: str = "height",
        lam: float = 1e-5,
        eps: float = 1e-12,
        form: str = "released",
        noise_std: str = "pixel",
    ) -> None:
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}")
        if axis not in AXES:
            raise ValueError(f"unknown softmax axis {axis!r}")
        if form not in FORMS:
            raise ValueError(f"unknown RRM form {form!r}; expected one of {FORMS}")
        if form == "released" and axis != "height":
            raise ValueError("the released RRM form takes its softmax over the height axis "
                             "(losses: {rrm: {axis: height}})")
        if noise_std not in NOISE_STDS:
            raise ValueError(f"unknown noise std {noise_std!r}; expected one of {NOISE_STDS}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.pairing, self.n_samples, self.axis, self.lam, self.eps = pairing, n_samples, axis, lam, eps
        self.form, self.noise_std = form, noise_std

    def forward(
        self,
        student_feats: Sequence[Tensor],
        teacher_feats: Sequence[Tensor],
        generator: torch.Generator | None = None,
        pairing: Tensor | None = None,
        noise: Sequence[tuple[Tensor, Tensor]] | None = None,
        slot_present: Tensor | None = None,
    ) -> Tensor:
        scheme = self.pairing if pairing is None else pairing
        return rrm_loss(
            student_feats, teacher_feats, scheme, self.n_samples, self.axis, self.lam, generator, noise, self.eps,
            self.form, self.noise_std, slot_present,
        )
