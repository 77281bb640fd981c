"""The losses' fast paths (closed-form gradients, chunked RRM sums) against the direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsbench.losses import kd_loss, rrm_loss
from rsbench.losses import rrm as rrm_module
from rsbench.losses.rrm import noisy_copies, released_inverse_fisher


def _kd_direct(zs: torch.Tensor, zt: torch.Tensor, temperature: float) -> torch.Tensor:
    log_s = F.log_softmax(zs / temperature, dim=1)
    log_t = F.log_softmax(zt / temperature, dim=1)
    return (log_t.exp() * (log_t - log_s)).mean() * temperature**2


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_kd_value_and_gradient_equal_autograd_of_the_formula(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64)
    got = kd_loss(zs, zt, temperature)
    want = _kd_direct(zs, zt, temperature)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    (g_got,) = torch.autograd.grad(got, zs)
    (g_want,) = torch.autograd.grad(want, zs)
    torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-15)
    assert torch.autograd.gradcheck(lambda s: kd_loss(s, zt, temperature), (zs,))


def test_kd_gradient_survives_a_retained_graph() -> None:
    """Gradient-share logging differentiates each term with ``retain_graph``, then the total again."""
    g = torch.Generator().manual_seed(1)
    zs = torch.randn(1, 4, 3, 3, generator=g, requires_grad=True)
    loss = kd_loss(zs, torch.randn(1, 4, 3, 3, generator=g))
    (first,) = torch.autograd.grad(loss, zs, retain_graph=True)
    (second,) = torch.autograd.grad(loss, zs)
    assert torch.equal(first, second)


def _direct_released(fs, ft, ns, nt, noise_std):
    inv = released_inverse_fisher(noisy_copies(fs, ns, noise_std), noisy_copies(ft, nt, noise_std))
    return torch.linalg.vector_norm(inv, dim=-1).sum()


@pytest.mark.parametrize("chunk", [7, 25, 60, 150, 700, 10**9])  # channels, pairs, copies, all at once
@pytest.mark.parametrize("noise_std", ["pixel", "map"])
def test_rrm_chunked_sums_equal_the_direct_released_form(monkeypatch, chunk: int, noise_std: str) -> None:
    monkeypatch.setattr(rrm_module, "CHUNK_ELEMENTS", chunk)
    g = torch.Generator().manual_seed(2)
    fs = torch.randn(5, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)  # [P, C, H, W]
    ft = torch.randn(5, 3, 4, 5, generator=g, dtype=torch.float64)
    ns, nt = (torch.randn(4, 5, 3, 4, 5, generator=g, dtype=torch.float64) for _ in range(2))
    got = torch.linalg.vector_norm(rrm_module.released_inverse_fisher_chunked(fs, ft, ns, nt, noise_std), dim=-1).sum()
    want = _direct_released(fs, ft, ns, nt, noise_std)
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    (g_got,) = torch.autograd.grad(got, fs)
    (g_want,) = torch.autograd.grad(want, fs)
    torch.testing.assert_close(g_got, g_want, rtol=1e-8, atol=1e-12 * float(g_want.abs().max()))


def test_rrm_loss_in_float32_chunks_equals_one_chunk(monkeypatch) -> None:
    g = torch.Generator().manual_seed(3)
    sf = [torch.randn(2, 3, 4, 6, 5, generator=g), torch.randn(2, 3, 8, 3, 2, generator=g)]
    tf = [torch.randn(x.shape, generator=g) for x in sf]
    values = {}
    for chunk in (100, 10**9):
        monkeypatch.setattr(rrm_module, "CHUNK_ELEMENTS", chunk)
        leaves = [x.clone().requires_grad_(True) for x in sf]
        loss = rrm_loss(leaves, tf, "shuffle", 3, generator=torch.Generator().manual_seed(4))
        loss.backward()
        values[chunk] = (loss.item(), [x.grad for x in leaves])
    assert values[100][0] == pytest.approx(values[10**9][0], rel=1e-5)
    for a, b in zip(values[100][1], values[10**9][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))
