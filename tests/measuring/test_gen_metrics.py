"""KID (unbiased MMD^2, cubic kernel) and k-NN precision/recall, checked against formulas written out here."""

import pytest
import torch

from mage_lite import gen_metrics as gm


def gauss(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


# --- KID ----------------------------------------------------------------------------------------

def test_mmd2_unbiased_matches_the_formula_written_out():
    x, y = gauss(5, 3, 0), gauss(4, 3, 1, shift=0.7)
    d = 3

    def k(a, b):  # KID's cubic kernel, one pair at a time
        return (sum(float(a[t] * b[t]) for t in range(d)) / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert gm.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert gm.polynomial_kernel(x, y)[2, 3] == pytest.approx(k(x[2], y[3]), rel=1e-12)


def test_mmd2_is_unbiased_on_a_hand_made_case():
    # 1-d, k(x, y) = (xy + 1)^3, x ~ N(0, 1), y ~ N(mu, 1). With E x^2 = 1, E x^3 = 0, E y = mu,
    # E y^2 = 1 + mu^2, E y^3 = mu^3 + 3 mu and independent pairs:
    #   E k(x, x') = 3 + 1 = 4;  E k(x, y) = 3 (1 + mu^2) + 1;
    #   E k(y, y') = (mu^3 + 3 mu)^2 + 3 (1 + mu^2)^2 + 3 mu^2 + 1.
    mu = 0.5
    exact = 4 + ((mu ** 3 + 3 * mu) ** 2 + 3 * (1 + mu ** 2) ** 2 + 3 * mu ** 2 + 1) - 2 * (3 * (1 + mu ** 2) + 1)
    assert exact == pytest.approx(3.578125)
    g = torch.Generator().manual_seed(0)
    reps, m = 3000, 8  # tiny sets: a biased estimator would be far off
    u, same, v = [], [], []
    for _ in range(reps):
        x = torch.randn(m, 1, generator=g, dtype=torch.float64)
        y = torch.randn(m, 1, generator=g, dtype=torch.float64) + mu
        x2 = torch.randn(m, 1, generator=g, dtype=torch.float64)
        u.append(gm.mmd2_unbiased(x, y))
        same.append(gm.mmd2_unbiased(x, x2))
        kxx, kyy, kxy = gm.polynomial_kernel(x, x), gm.polynomial_kernel(y, y), gm.polynomial_kernel(x, y)
        v.append(float(kxx.mean() + kyy.mean() - 2 * kxy.mean()))  # the biased V-statistic, diagonals kept
    u, same, v = (torch.tensor(a, dtype=torch.float64) for a in (u, same, v))
    se = lambda a: float(a.std() / len(a) ** 0.5)  # noqa: E731
    assert abs(float(u.mean()) - exact) < 4 * se(u), (float(u.mean()), exact, se(u))
    assert abs(float(same.mean())) < 4 * se(same), (float(same.mean()), se(same))  # same distribution: 0 on average
    assert float(v.mean()) - exact > 8 * se(v)  # keeping the diagonals biases it upward: the test can tell


def test_kid_of_a_set_against_itself_is_about_zero_and_grows_with_a_shift():
    x = gauss(600, 16, 0)
    self_kid = gm.kid(x, x, subsets=20, subset_size=300)
    assert isinstance(self_kid, gm.KID) and self_kid.subsets == 20 and self_kid.subset_size == 300
    shifts = {s: gm.kid(gauss(600, 16, 1, shift=s), x, subsets=20, subset_size=300) for s in (0.0, 0.1, 0.2, 0.5, 1.0)}
    means = [r.mean for r in shifts.values()]
    assert means == sorted(means) and shifts[1.0].mean > 10 * shifts[1.0].std  # grows with the shift, far outside the spread
    # Against itself: about 0 on the scale of a shift. Slightly negative, since a point drawn into both
    # subsets adds its large k(x_i, x_i) to the cross term only; for the whole set exactly
    # 2 (S_off / (m (m - 1)) - S_all / m^2) with S the kernel sums, of order 1 / m.
    assert abs(self_kid.mean) < 0.05 and abs(self_kid.mean) < 0.03 * shifts[0.5].mean
    kxx, m = gm.polynomial_kernel(x, x), len(x)
    off = kxx.sum() - kxx.diagonal().sum()
    assert gm.mmd2_unbiased(x, x) == pytest.approx(float(2 * (off / (m * (m - 1)) - kxx.sum() / m ** 2)), rel=1e-9)
    # A second draw of the same distribution: 0 within the subset spread.
    assert abs(shifts[0.0].mean) < 3 * shifts[0.0].std


def test_kid_is_deterministic_and_caps_the_subset_size():
    x, y = gauss(50, 4, 0), gauss(80, 4, 1, shift=0.3)
    a = gm.kid(x, y, subsets=5, subset_size=1000, seed=3)
    assert a == gm.kid(x, y, subsets=5, subset_size=1000, seed=3) and a.subset_size == 50
    full = gm.kid(x, x, subsets=3, subset_size=1000)  # subsets of all 50 points: every subset is the set itself
    assert full.std == pytest.approx(0.0, abs=1e-12)
    assert full.mean == pytest.approx(gm.mmd2_unbiased(x, x), rel=1e-5)  # float32 kernels in kid
    with pytest.raises(ValueError, match="differ in width"):
        gm.kid(x, gauss(50, 5, 2))


def test_float32_kernels_agree_with_float64():
    x, y = gauss(400, 32, 0).relu(), gauss(400, 32, 1).relu() + 0.05
    a64 = gm.kid(x, y, subsets=5, subset_size=300, dtype=torch.float64)
    a32 = gm.kid(x, y, subsets=5, subset_size=300)  # the default: float32 kernels, float64 sums
    assert a32.mean == pytest.approx(a64.mean, rel=1e-4) and a32.std == pytest.approx(a64.std, rel=1e-3)


# --- precision and recall -----------------------------------------------------------------------------

def test_knn_radii_on_a_line():
    pts = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    assert gm.knn_radii(pts, k=1).tolist() == [1.0, 1.0, 2.0, 3.0]
    assert gm.knn_radii(pts, k=2).tolist() == [3.0, 2.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="k must be"):
        gm.knn_radii(pts, k=4)


def test_inside_manifold_counts_the_border():
    manifold, radii = torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([1.0, 2.0])
    pts = torch.tensor([[1.0, 0.0], [0.0, 1.5], [12.0, 0.0], [5.0, 0.0]])
    assert gm.inside_manifold(pts, manifold, radii).tolist() == [True, False, True, False]


def test_precision_recall_of_a_set_against_itself_is_one_and_disjoint_clusters_near_zero():
    x = gauss(300, 8, 0)
    assert gm.precision_recall(x, x) == (1.0, 1.0, 3)
    far = gauss(300, 8, 1, shift=20.0)
    p, r, _ = gm.precision_recall(far, x)
    assert p < 0.01 and r < 0.01
    same_dist = gm.precision_recall(gauss(300, 8, 2), x)
    assert same_dist.precision > 0.5 and same_dist.recall > 0.5  # two draws of one distribution overlap


def test_precision_and_recall_separate_fidelity_from_coverage():
    real = gauss(400, 4, 0)
    # collapsed samples: all near the real centre (realistic, no variety) -> high precision, low recall
    collapsed = gauss(400, 4, 1) * 0.05
    p, r, _ = gm.precision_recall(collapsed, real)
    assert p > 0.9 and r < 0.3
    # half of the samples off the manifold -> precision about one half
    half = torch.cat([gauss(200, 4, 2), gauss(200, 4, 3, shift=25.0)])
    p_half, _, _ = gm.precision_recall(half, real)
    assert 0.3 < p_half < 0.55


def test_chunked_distances_match_torch_cdist(monkeypatch):
    monkeypatch.setattr(gm, "CHUNK", 7)
    a, b = gauss(30, 5, 0), gauss(20, 5, 1)
    assert torch.allclose(gm.pairwise_distances(a, b), torch.cdist(a, b), atol=1e-10)
    radii = gm.knn_radii(a, k=3)
    d = torch.cdist(a, a) + torch.diag(torch.full((30,), float("inf"), dtype=torch.float64))
    assert torch.allclose(radii, d.sort(dim=1).values[:, 2], atol=1e-10)
