"""The first layer on sparse features with per-seed dropout (gdepth.nn.sparse_input, through
StackedInput): the dense product's numbers in float64, forward and weight gradient, and the
same dropout masks (the same random stream) as before the kernel existed."""

from __future__ import annotations

import warnings

import pytest
import torch

from gdepth import config, data
from gdepth.nn.dropout import keep_mask
from gdepth.nn.kernels import StackedInput
from gdepth.nn.sparse_input import SparseRows, masked_product

U64 = 2.0 ** -53  # float64's unit roundoff


def gamma(k: int, u: float = U64) -> float:
    """Higham's :math:`\\gamma_k = ku/(1-ku)`: a k-term dot product computed in floating
    point is off by at most :math:`\\gamma_k \\sum |x_i y_i|` (any summation order)."""
    return k * u / (1 - k * u)


def _csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
        return dense.to_sparse_csr()


@pytest.fixture(scope="module")
def cora_x(mirror, tmp_path_factory) -> torch.Tensor:
    """Cora's bag of words as the cell stores them (raw, sparse CSR), in float64."""
    cfg = config.group("dataset", name="cora", split="public")
    folders = config.DataConfig(root=str(tmp_path_factory.mktemp("data")), mirror=str(mirror))
    return _csr(data.load(cfg, folders, 0).x.double())


def _with_holes() -> torch.Tensor:
    """A small random CSR matrix with empty rows and empty columns (empty bags both ways)."""
    gen = torch.Generator().manual_seed(1)
    dense = torch.rand(40, 30, generator=gen, dtype=torch.float64)
    dense *= torch.rand(40, 30, generator=gen, dtype=torch.float64) < 0.2
    dense[[3, 17, 39]] = 0
    dense[:, [0, 11, 29]] = 0
    return _csr(dense)


def _reference(x: torch.Tensor, masks: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor):
    """The dense computation: ``X_s = X ⊙ M_s`` densified, ``Y_s = X_s W_s``, ``∂W_s = X_sᵀ
    G_s``; and the bounds of its difference to any other summation order of the same
    products (:func:`gamma` of both sides' term counts times the sums of |terms|)."""
    crow, col, values = x.crow_indices(), x.col_indices(), x.values()
    xs = torch.stack([torch.sparse_csr_tensor(crow, col, values * m, x.shape).to_dense()
                      for m in masks])  # [S, N, F]
    out = torch.bmm(xs, weight).transpose(0, 1)
    g = grad.transpose(0, 1)  # [S, N, d]
    grad_w = torch.bmm(xs.transpose(1, 2), g)
    n, f = x.shape
    per_row = int((crow[1:] - crow[:-1]).max())
    per_col = int(torch.bincount(col, minlength=f).max())
    out_tol = ((gamma(per_row) + gamma(f))
               * torch.bmm(xs.abs(), weight.abs()).transpose(0, 1))
    grad_tol = (gamma(per_col) + gamma(n)) * torch.bmm(xs.abs().transpose(1, 2), g.abs())
    return out, grad_w, out_tol, grad_tol


def _assert_within(found: torch.Tensor, expected: torch.Tensor, tol: torch.Tensor) -> None:
    excess = (found - expected).abs() - tol
    assert float(excess.max()) <= 0.0, f"off by {float(excess.max())} beyond the bound"


@pytest.mark.parametrize("seeds", [1, 3])
@pytest.mark.parametrize("p", [0.5, 0.6])  # 0.5: keep_mask's table path, 0.6: rand >= p
@pytest.mark.parametrize("which", ["cora", "holes"])
def test_sparse_first_layer_is_the_dense_product(cora_x, seeds, p, which):
    """StackedInput with the production masks (keep_mask, seeded): logits and weight
    gradient equal the dense masked product's in float64 within the derived rounding bound;
    the masks are those keep_mask draws over ``[S, nnz]`` from the same generator state."""
    x = cora_x if which == "cora" else _with_holes()
    n, f = x.shape
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(seeds, f, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(n, seeds, 16, generator=gen, dtype=torch.float64)
    x_in = StackedInput(x)
    assert isinstance(x_in.rows(), SparseRows)  # the CPU path under test, not the fallback
    torch.manual_seed(11)
    out = x_in(weight, p, None)
    (grad_w,) = torch.autograd.grad(out, weight, grad)
    after = torch.get_rng_state()
    torch.manual_seed(11)
    masks = keep_mask(x.values().expand(seeds, x.values().numel()), p)
    assert torch.equal(torch.get_rng_state(), after)  # the forward drew exactly these masks
    ref_out, ref_grad, out_tol, grad_tol = _reference(x, masks, weight.detach(), grad)
    assert out.shape == (n, seeds, 16) and out.is_contiguous()
    _assert_within(out.detach(), ref_out, out_tol)
    _assert_within(grad_w, ref_grad, grad_tol)


@pytest.mark.parametrize("seeds", [1, 3])
def test_injected_masks_reach_the_kernel(cora_x, seeds):
    """A ``mask_fn``'s ``[S, nnz]`` masks (the equivalence tests inject the loop's) are the
    ones multiplied: the result is the dense product with those masks."""
    n, f = cora_x.shape
    gen = torch.Generator().manual_seed(4)
    masks = (torch.rand(seeds, cora_x.values().numel(), generator=gen) > 0.3).double() / 0.7
    weight = torch.randn(seeds, f, 8, generator=gen, dtype=torch.float64)
    out = StackedInput(cora_x)(weight, 0.3, lambda shape, p: masks)
    ref_out, _, out_tol, _ = _reference(cora_x, masks, weight, torch.zeros(n, seeds, 8,
                                                                           dtype=torch.float64))
    _assert_within(out, ref_out, out_tol)


def test_the_mask_stream_is_the_one_committed_records_were_drawn_with(cora_x):
    """The masks of Cora's first layer (float32, as the cell stores the features) for seeds
    0..2 after ``torch.manual_seed(0)``: the
    kept counts of each seed's ``[nnz]`` mask (49,216 stored values) are pinned. torch's CPU
    generator is the same on every machine, so these counts change only if the draw changes
    (another shape, order, or mask function), which would change every committed Cora record
    run with input dropout."""
    cora_x = _csr(cora_x.to_dense().float())  # float32, as a cell stores it
    weight = torch.ones(3, cora_x.shape[1], 1)
    per_row = int((cora_x.crow_indices()[1:] - cora_x.crow_indices()[:-1]).max())
    for p, kept in ((0.5, [24523, 24629, 24470]), (0.6, [19685, 19761, 19779])):
        torch.manual_seed(0)
        out = StackedInput(cora_x)(weight, p, None)[..., 0]  # row sums of the masked values
        torch.manual_seed(0)
        masks = keep_mask(cora_x.values().expand(3, cora_x.values().numel()), p)
        assert (masks != 0).sum(dim=1).tolist() == kept
        counts = torch.stack([torch.sparse_csr_tensor(
            cora_x.crow_indices(), cora_x.col_indices(), (m != 0).float(), cora_x.shape)
            .to_dense().sum(dim=1) for m in masks], dim=1)  # kept entries per node and seed
        expected = counts * masks.max()  # every kept value is 1 · 1/(1-p)
        _assert_within(out, expected, 2 * gamma(per_row, 2.0 ** -24) * expected)


def test_masked_product_without_dropout_is_the_shared_product(cora_x):
    """All-ones masks: every seed's product is X W_s, the eval path's one product."""
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(2, cora_x.shape[1], 4, generator=gen, dtype=torch.float64)
    values = cora_x.values().expand(2, -1)
    out = masked_product(SparseRows(cora_x), values, weight)
    shared = StackedInput(cora_x)(weight, 0.0, None)
    per_row = int((cora_x.crow_indices()[1:] - cora_x.crow_indices()[:-1]).max())
    bound = torch.stack([torch.sparse.mm(cora_x, w.abs()) for w in weight], dim=1)
    _assert_within(out, shared, 2 * gamma(per_row) * bound)


def test_sparse_rows_refuse_a_dense_matrix():
    with pytest.raises(ValueError, match="sparse CSR"):
        SparseRows(torch.zeros(3, 3))
