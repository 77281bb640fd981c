"""Losses: hand-computed values, slow loop references, zero at student == teacher, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsbench.errors import ConfigError
from rsbench.losses import (
    LOSSES,
    class_prototypes,
    create_loss,
    draw_pairing,
    hpdm_loss,
    kd_loss,
    ohem_cross_entropy,
    rrm_loss,
)

IGN = 255


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---------------------------------------------------------------- OHEM / CE


def _binary_logits(probs: list[float]) -> torch.Tensor:
    """[1, 2, 1, W] logits whose class-0 probability is ``probs``."""
    return torch.tensor([[[[_logit(p) for p in probs]], [[0.0] * len(probs)]]])


def test_ohem_keeps_hard_pixels():
    logits = _binary_logits([0.9, 0.5, 0.2, 0.8, 0.1])
    labels = torch.tensor([[[0, 0, 0, 0, IGN]]])  # 4 valid -> n_min = 0; hard: p = 0.5, 0.2
    expected = (-math.log(0.5) - math.log(0.2)) / 2
    assert ohem_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-5)


def test_ohem_keeps_at_least_n_min():
    probs = [0.95] * 30 + [0.75, 0.8]  # all easy; 32 valid -> n_min = 2 hardest
    logits, labels = _binary_logits(probs), torch.zeros(1, 1, 32, dtype=torch.long)
    expected = (-math.log(0.75) - math.log(0.8)) / 2
    assert ohem_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    # threshold 0.9 makes 0.75 and 0.8 hard anyway; threshold 1.0 keeps everything
    assert ohem_cross_entropy(logits, labels, thresh=0.9).item() == pytest.approx(expected, rel=1e-5)
    all_mean = sum(-math.log(p) for p in probs) / 32
    assert ohem_cross_entropy(logits, labels, thresh=1.0).item() == pytest.approx(all_mean, rel=1e-5)


def test_ce_and_all_ignored():
    logits = _binary_logits([0.9, 0.5, 0.3]).requires_grad_(True)
    labels = torch.tensor([[[0, 1, IGN]]])
    expected = (-math.log(0.9) - math.log(0.5)) / 2
    assert create_loss("ce")(logits, labels).item() == pytest.approx(expected, rel=1e-5)
    none = torch.full_like(labels, IGN)
    for name in ("ce", "ohem_ce"):
        out = create_loss(name)(logits, none)
        out.backward()
        assert out.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_ohem_minimal_for_confident_correct_logits():
    labels = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    logits = 30.0 * F.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    assert 0.0 <= create_loss("ohem_ce")(logits, labels).item() < 1e-10


# ---------------------------------------------------------------- KD


def test_kd_hand_value():
    zs = torch.zeros(1, 2, 1, 1)
    zt = torch.tensor([math.log(3.0), 0.0]).view(1, 2, 1, 1)  # p_t = (3/4, 1/4), p_s = (1/2, 1/2)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd_loss(zs, zt).item() == pytest.approx(kl / 2, rel=1e-6)  # mean over K = 2 entries
    # temperature 2: p_t = softmax(z / 2) = (sqrt3, 1) / (sqrt3 + 1); scaled by T^2
    pt = math.sqrt(3) / (math.sqrt(3) + 1)
    kl2 = pt * math.log(2 * pt) + (1 - pt) * math.log(2 * (1 - pt))
    assert create_loss("kd", temperature=2.0)(zs, zt).item() == pytest.approx(4 * kl2 / 2, rel=1e-6)


def test_kd_matches_kldiv_mean_and_zero_when_equal():
    g = torch.Generator().manual_seed(0)
    zs, zt = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g)
    ref = (F.softmax(zt, 1) * (F.log_softmax(zt, 1) - F.log_softmax(zs, 1))).sum() / zs.numel()
    assert kd_loss(zs, zt).item() == pytest.approx(ref.item(), rel=1e-5)
    assert kd_loss(zt, zt).abs().item() < 1e-7


# ---------------------------------------------------------------- prototypes


def _feat_2x2() -> torch.Tensor:
    f = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])  # [C=2, 2, 2]
    return f.view(1, 1, 2, 2, 2)


def test_prototypes_hand_mean_and_count_squared():
    labels = torch.tensor([[[0, 0], [1, IGN]]])
    mean = class_prototypes(_feat_2x2(), labels, num_classes=3)
    assert mean.shape == (1, 1, 3, 2)
    assert torch.allclose(mean[0, 0], torch.tensor([[1.5, 15.0], [3.0, 30.0], [0.0, 0.0]]))
    sq = class_prototypes(_feat_2x2(), labels, num_classes=3, norm="count_squared")
    assert torch.allclose(sq[0, 0], torch.tensor([[0.75, 7.5], [3.0, 30.0], [0.0, 0.0]]))


def test_prototypes_nearest_downsample():
    labels = torch.full((1, 4, 4), 2)  # only [0::2, 0::2] survive the downsample to 2x2
    labels[0, 0::2, 0::2] = torch.tensor([[0, 0], [1, IGN]])
    protos = class_prototypes(_feat_2x2(), labels, num_classes=3)
    assert torch.allclose(protos[0, 0], torch.tensor([[1.5, 15.0], [3.0, 30.0], [0.0, 0.0]]))


def _slow_prototypes(f: torch.Tensor, labels: torch.Tensor, k: int, norm: str) -> torch.Tensor:
    b, m, c, h, w = f.shape
    sh, sw = labels.shape[1] // h, labels.shape[2] // w  # integer factors: nearest = stride pick
    lab = labels[:, ::sh, ::sw]
    out = torch.zeros(b, m, k, c, dtype=torch.float64)
    for bi in range(b):
        for mi in range(m):
            for ci in range(k):
                sel = lab[bi] == ci
                n = int(sel.sum())
                if n:
                    out[bi, mi, ci] = f[bi, mi][:, sel].double().sum(-1) / (n if norm == "mean" else n * n)
    return out


@pytest.mark.parametrize("norm", ["mean", "count_squared"])
def test_prototypes_match_loop(norm):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(3, 2, 5, 4, 4, generator=g)
    labels = torch.randint(0, 4, (3, 8, 8), generator=g)
    labels[labels == 3] = IGN
    ref = _slow_prototypes(f, labels, 6, norm)
    assert torch.allclose(class_prototypes(f, labels, 6, norm).double(), ref, atol=1e-6)


def test_prototypes_reject_out_of_range_label():
    with pytest.raises(RuntimeError):
        class_prototypes(_feat_2x2(), torch.tensor([[[0, 5], [1, 1]]]), num_classes=3)


# ---------------------------------------------------------------- HPDM


def test_hpdm_hand_value():
    ft, fs = torch.full((1, 1, 1, 1, 1), 2.0), torch.full((1, 1, 1, 1, 1), 1.0)
    labels = torch.zeros(1, 1, 1, dtype=torch.long)  # P_T = (2, 0), P_S = (1, 0) over K = 2, C = 1
    pt, ps = 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(-1))
    kl = pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))
    assert hpdm_loss([fs], [ft], labels, 2, "same").item() == pytest.approx(kl / 2, rel=1e-5)


def _slow_hpdm(sf, tf, labels, k, pi, norm):
    total = 0.0
    b = labels.shape[0]
    for fs, ft in zip(sf, tf, strict=True):
        ps, pt = _slow_prototypes(fs, labels, k, norm), _slow_prototypes(ft, labels, k, norm)
        for bi in range(b):
            for m in range(ft.shape[1]):
                s, t = ps[bi, int(pi[m])], pt[bi, m]  # [K, C]
                acc = 0.0
                for c in range(t.shape[1]):
                    zt = [math.exp(v) for v in t[:, c].tolist()]
                    zs = [math.exp(v) for v in s[:, c].tolist()]
                    qt = [v / sum(zt) for v in zt]
                    qs = [v / sum(zs) for v in zs]
                    acc += sum(a * math.log(a / q) for a, q in zip(qt, qs, strict=True))
                total += acc / (k * t.shape[1])
    return total / b


def _stage_feats(g, b=2, m=3):
    return [torch.randn(b, m, 4, 8, 8, generator=g), torch.randn(b, m, 6, 4, 4, generator=g)]


@pytest.mark.parametrize("pairing", ["same", "shuffle", "random"])
@pytest.mark.parametrize("norm", ["mean", "count_squared"])
def test_hpdm_matches_loop_reference(pairing, norm):
    g = torch.Generator().manual_seed(2)
    sf, tf = _stage_feats(g), _stage_feats(g)
    labels = torch.randint(0, 5, (2, 16, 16), generator=g)
    labels[:, :3] = IGN
    seed = 3
    # the documented draw: same -> arange; shuffle -> randperm(M); random -> randint(0, M, (M,))
    ref_gen = torch.Generator().manual_seed(seed)
    draws = {
        "same": lambda: torch.arange(3),
        "shuffle": lambda: torch.randperm(3, generator=ref_gen),
        "random": lambda: torch.randint(0, 3, (3,), generator=ref_gen),
    }
    pi = draws[pairing]()
    if pairing == "shuffle":
        assert not torch.equal(pi, torch.arange(3))  # the seed gives a non-trivial permutation
    if pairing == "random":
        assert len(set(pi.tolist())) < 3  # ... and a draw with repeats
    assert torch.equal(draw_pairing(pairing, 3, torch.Generator().manual_seed(seed)), pi)
    expected = _slow_hpdm(sf, tf, labels, 6, pi, norm)
    loss = create_loss("hpdm", num_classes=6, pairing=pairing, norm=norm)
    got = loss(sf, tf, labels, generator=torch.Generator().manual_seed(seed))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_hpdm_zero_when_student_equals_teacher():
    g = torch.Generator().manual_seed(4)
    f = _stage_feats(g)
    labels = torch.randint(0, 5, (2, 16, 16), generator=g)
    assert hpdm_loss(f, f, labels, 5, "same").abs().item() < 1e-7
    shared = [x[:, :1].expand_as(x).contiguous() for x in f]  # identical modalities: any pairing is exact
    for pairing in ("shuffle", "random"):
        assert hpdm_loss(shared, shared, labels, 5, pairing, generator=g).abs().item() < 1e-7
    assert hpdm_loss(_stage_feats(g), f, labels, 5, "same").item() > 1e-3


def test_hpdm_gradient_reaches_student_only():
    g = torch.Generator().manual_seed(5)
    sf = [x.requires_grad_(True) for x in _stage_feats(g)]
    tf = [x.requires_grad_(True) for x in _stage_feats(g)]
    hpdm_loss(sf, tf, torch.randint(0, 5, (2, 16, 16), generator=g), 5).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in sf)
    assert all(x.grad is None for x in tf)


# ---------------------------------------------------------------- RRM


def _rrm_slow(sf, tf, noise, pi, axis, lam, eps=1e-12):
    """Loops over stage, sample, pair and noisy copy; closed-form gradients of the KL."""
    dim = {"channel": 0, "height": 1}[axis]
    total = 0.0
    b = tf[0].shape[0]
    for fs_all, ft_all, (ns_all, nt_all) in zip(sf, tf, noise, strict=True):
        for bi in range(b):
            for m in range(ft_all.shape[1]):
                fs, ft = fs_all[bi, int(pi[m])].double(), ft_all[bi, m].double()
                c, h, w = fs.shape
                r = h * w if axis == "channel" else c * w
                ds, gs2, gt2 = [], [], []
                for i in range(ns_all.shape[0]):
                    xs = fs + fs.std(correction=0) * ns_all[i, bi, m].double()
                    xt = ft + ft.std(correction=0) * nt_all[i, bi, m].double()
                    ls, lt = torch.log_softmax(xs, dim), torch.log_softmax(xt, dim)
                    row_kl = (lt.exp() * (lt - ls)).sum(dim, keepdim=True)
                    ds.append(float(row_kl.sum()) / r)
                    gs2.append(float((((ls.exp() - lt.exp()) / r) ** 2).sum()))  # dD/dx_s = (p_s - p_t) / R
                    gt2.append(float(((lt.exp() * (lt - ls - row_kl) / r) ** 2).sum()))  # p_t (log ratio - KL) / R
                n = len(ds)
                d_bar = sum(ds) / n
                inv_s, inv_t = d_bar / (sum(gs2) / n + eps), d_bar / (sum(gt2) / n + eps)
                total += lam * math.hypot(inv_s, inv_t)
    return total / b


def _rrm_inputs(seed, n=3, b=2, m=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shapes = [(b, m, 4, 6, 5), (b, m, 8, 3, 2)]
    sf = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    tf = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    noise = [
        (torch.randn((n, *s), generator=g, dtype=dtype), torch.randn((n, *s), generator=g, dtype=dtype)) for s in shapes
    ]
    return sf, tf, noise


def _pairs(noise):
    """``[n, B, M, ...]`` noise -> the loss's per-pair layout ``[n, B*M, ...]`` (all pairs kept)."""
    return [(ns.flatten(1, 2), nt.flatten(1, 2)) for ns, nt in noise]


OLD = {"form": "logit_grad", "noise_std": "map"}


@pytest.mark.parametrize("axis", ["channel", "height"])
@pytest.mark.parametrize("pairing", ["same", "shuffle"])
def test_rrm_logit_grad_matches_loop_reference(axis, pairing):
    sf, tf, noise = _rrm_inputs(6)
    pi = draw_pairing(pairing, 2, torch.Generator().manual_seed(1))
    got = rrm_loss(sf, tf, pairing=pi, axis=axis, lam=1.0, noise=_pairs(noise), **OLD)
    assert got.item() == pytest.approx(_rrm_slow(sf, tf, noise, pi, axis, 1.0), rel=1e-4)


def test_rrm_generator_draw_order_and_default_lambda():
    sf, tf, _ = _rrm_inputs(7)
    g = torch.Generator().manual_seed(11)
    noise = [(torch.randn((4, *x.shape), generator=g), torch.randn((4, *x.shape), generator=g)) for x in tf]
    expected = rrm_loss(sf, tf, noise=_pairs(noise))
    got = create_loss("rrm", n_samples=4)(sf, tf, generator=torch.Generator().manual_seed(11))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() == pytest.approx(1e-5 * rrm_loss(sf, tf, noise=_pairs(noise), lam=1.0).item(), rel=1e-5)


@pytest.mark.parametrize("form", ["released", "logit_grad"])
@pytest.mark.parametrize("noise_std", ["pixel", "map"])
def test_rrm_gradcheck_double(form, noise_std):
    sf, tf, noise = _rrm_inputs(8, n=2, b=1, m=2, dtype=torch.float64)
    s0 = sf[1][:, :, :3].clone().requires_grad_(True)  # [1, 2, 3, 3, 2]
    t0, nz = tf[1][:, :, :3], _pairs([(noise[1][0][:, :, :, :3], noise[1][1][:, :, :, :3])])
    for axis in ("channel", "height") if form == "logit_grad" else ("height",):

        def fn(s, axis=axis):
            return rrm_loss([s], [t0], pairing=torch.tensor([1, 0]), axis=axis, lam=1e-5, noise=nz, form=form,
                            noise_std=noise_std)

        assert torch.autograd.gradcheck(fn, (s0,), eps=1e-6, atol=1e-5, rtol=1e-4)


def _released_by_autograd(xs: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    """The released procedure step by step for one pair of noisy copies ``[n, C, H, W]`` (autograd, not closed form).

    Rows stacked to ``[n*C, H, W]``; KLDivLoss(mean) of log_softmax(student) against softmax(teacher) over
    H; gradients w.r.t. those softmax OUTPUTS with create_graph; squared norm over H averaged; / KL.
    """
    n, c, h, w = xs.shape
    ls = torch.log_softmax(xs.reshape(n * c, h, w), dim=1)
    pt = torch.softmax(xt.reshape(n * c, h, w).detach().requires_grad_(True), dim=1)  # released: requires_grad_()
    kl = (torch.nn.functional.kl_div(ls, pt, reduction="sum") / pt.numel()).clamp(min=0)  # KLDivLoss "mean"
    gs, gt = torch.autograd.grad(kl, [ls, pt], create_graph=True)
    info = torch.stack([g.norm(dim=1).pow(2).mean() / kl for g in (gs, gt)])
    return torch.linalg.vector_norm(1 / info)


def test_rrm_released_closed_form_equals_autograd_and_student_term_depends_on_teacher_only():
    from rsbench.losses.rrm import noisy_copies, released_inverse_fisher

    g = torch.Generator().manual_seed(3)
    fs = torch.randn(2, 5, 6, 4, generator=g, dtype=torch.double, requires_grad=True)  # [P, C, H, W]
    ft = torch.randn(2, 5, 6, 4, generator=g, dtype=torch.double)
    ns, nt = torch.randn(3, 2, 5, 6, 4, generator=g, dtype=torch.double), torch.randn(3, 2, 5, 6, 4, generator=g,
                                                                                       dtype=torch.double)
    xs, xt = noisy_copies(fs, ns), noisy_copies(ft, nt)
    inv = released_inverse_fisher(xs, xt)
    closed = torch.linalg.vector_norm(inv, dim=-1).sum()
    auto = sum(_released_by_autograd(xs[:, p], xt[:, p]) for p in range(2))
    assert closed.item() == pytest.approx(auto.item(), rel=1e-10)
    g1, = torch.autograd.grad(closed, fs, retain_graph=True)
    g2, = torch.autograd.grad(auto, fs)
    torch.testing.assert_close(g1, g2, rtol=1e-8, atol=1e-12)
    # 1/I_S = KL * N^2 / (H * mean p_T^2): the student enters through KL alone
    n, p, c, h, w = xs.shape
    big_n = n * c * h * w
    ls, lt = torch.log_softmax(xs, dim=-2), torch.log_softmax(xt, dim=-2)
    kl = (lt.exp() * (lt - ls)).sum(dim=(0, 2, 3, 4)) / big_n
    expected = kl * big_n**2 / (h * lt.exp().pow(2).mean(dim=(0, 2, 3, 4)))
    torch.testing.assert_close(inv[:, 0], expected, rtol=1e-10, atol=0)


def test_rrm_pixel_noise_std_is_the_released_tiled_row_std():
    from rsbench.losses.rrm import noisy_copies

    g = torch.Generator().manual_seed(4)
    f = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.double)  # [P, C, H, W]
    n = 6
    tiled = f[0].reshape(3, 20).repeat(1, n).reshape(3 * n, 20)  # the release's [n*C, H*W] rows
    sigma = tiled.std(dim=0).reshape(4, 5)
    ones = torch.ones(n, 1, 3, 4, 5, dtype=torch.double)
    torch.testing.assert_close(noisy_copies(f, ones, "pixel") - f, sigma.expand(n, 1, 3, 4, 5))
    torch.testing.assert_close(noisy_copies(f, ones, "map") - f, f.std(correction=0).expand(n, 1, 3, 4, 5))


def test_rrm_released_form_needs_height_axis():
    with pytest.raises(ValueError, match="height"):
        create_loss("rrm", axis="channel")
    assert create_loss("rrm", axis="channel", form="logit_grad").form == "logit_grad"


def test_rrm_teacher_gets_no_grad_and_no_grad_mode():
    sf, tf, noise = _rrm_inputs(9)
    sf = [x.requires_grad_(True) for x in sf]
    tf = [x.requires_grad_(True) for x in tf]
    loss = rrm_loss(sf, tf, noise=_pairs(noise), lam=1.0)
    loss.backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 for x in sf)
    assert all(x.grad is None for x in tf)
    with torch.no_grad():
        frozen = rrm_loss(sf, tf, noise=_pairs(noise), lam=1.0)
    assert not frozen.requires_grad and frozen.item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("form", ["released", "logit_grad"])
def test_rrm_minimal_when_student_equals_teacher(form):
    """Zero iff the noisy copies coincide; with independent noise s == t is the noise floor, below real gaps."""
    _, tf, noise = _rrm_inputs(10)
    shared = _pairs([(ns, ns) for ns, _ in noise])
    kw = {"form": form, "axis": "height"}
    assert rrm_loss(tf, tf, noise=shared, **kw).item() == 0.0
    g = torch.Generator().manual_seed(12)
    gaps = [torch.randn(x.shape, generator=g) for x in tf]
    assert rrm_loss([t + 0.5 * d for t, d in zip(tf, gaps, strict=True)], tf, noise=shared, **kw).item() > 0.0
    values = [rrm_loss([t + a * d for t, d in zip(tf, gaps, strict=True)], tf, noise=_pairs(noise), **kw).item()
              for a in (0, 3, 10)]
    assert values[0] > 0.0 and values[0] < values[1] < values[2]


def test_rrm_skips_pairs_on_slots_without_features():
    sf, tf, _ = _rrm_inputs(14)
    valid = torch.tensor([False, True])
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    masked = rrm_loss(sf, tf, "same", 3, generator=g1, slot_present=valid)
    only = rrm_loss([x[:, 1:] for x in sf], [x[:, 1:] for x in tf], "same", 3, generator=g2)
    assert masked.item() == pytest.approx(only.item(), rel=1e-6)


# ---------------------------------------------------------------- registry


def _call(name: str):
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(2, 5, 8, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 5, (2, 8, 8), generator=g)
    feats = [x.requires_grad_(True) for x in _stage_feats(g)]
    calls = {
        "ce": lambda loss: loss(logits, labels),
        "ohem_ce": lambda loss: loss(logits, labels),
        "kd": lambda loss: loss(logits, torch.randn(2, 5, 8, 8, generator=g)),
        "hpdm": lambda loss: loss(feats, _stage_feats(g), labels, generator=g),
        "rrm": lambda loss: loss(feats, _stage_feats(g), generator=g),
    }
    kwargs = {"hpdm": {"num_classes": 5}}.get(name, {})
    return calls[name](create_loss(name, **kwargs)), [logits, *feats]


@pytest.mark.parametrize("name", LOSSES.list())
def test_every_registered_loss_runs_and_backprops(name):
    out, inputs = _call(name)
    assert out.ndim == 0 and torch.isfinite(out) and out.item() >= 0
    out.backward()
    assert any(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)


def test_registry_names_and_errors():
    assert LOSSES.list() == ["ce", "hpdm", "kd", "ohem_ce", "rrm"]
    assert create_loss("kd", temperature=None).temperature == 1.0  # None kwargs keep defaults
    with pytest.raises(ConfigError, match="hpdm"):
        create_loss("hpdmm", num_classes=3)
    with pytest.raises(ValueError):
        create_loss("hpdm", num_classes=3, pairing="permute")
    with pytest.raises(ValueError):
        create_loss("rrm", axis="width")


@pytest.mark.parametrize("axis", ["channel", "height"])
def test_rrm_closed_form_gradients_equal_autograd(axis):
    from rsbench.losses.rrm import AXES, kl_and_input_grads

    g = torch.Generator().manual_seed(5)
    xs = torch.randn(3, 2, 4, 5, 6, generator=g, dtype=torch.double, requires_grad=True)
    xt = torch.randn(3, 2, 4, 5, 6, generator=g, dtype=torch.double, requires_grad=True)
    n_dist = 5 * 6 if axis == "channel" else 4 * 6
    d, gs, gt = kl_and_input_grads(xs, xt, AXES[axis], n_dist)
    auto_s, auto_t = torch.autograd.grad(d.sum(), (xs, xt))
    assert torch.allclose(gs, auto_s, atol=1e-12) and torch.allclose(gt, auto_t, atol=1e-12)


@pytest.mark.parametrize("form", ["released", "logit_grad"])
def test_rrm_finite_gradient_on_constant_student_features(form):
    """A zero-filled input through a fresh encoder gives all-zero features: sigma = 0 must not give NaN."""
    _, tf, _ = _rrm_inputs(15)
    zeros = [torch.zeros_like(t).requires_grad_(True) for t in tf]
    for noise_std in ("pixel", "map"):
        loss = rrm_loss(zeros, tf, "same", 3, generator=torch.Generator().manual_seed(0), form=form,
                        noise_std=noise_std, axis="height")
        (grad,) = torch.autograd.grad(loss, zeros[0])
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
