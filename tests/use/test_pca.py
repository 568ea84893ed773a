"""dlcli.use.pca: fit/transform/reconstruct with NumPy's SVD, checked on data of known covariance."""

import numpy as np
import pytest

from dlcli.use import pca

VARIANCES = np.array([9.0, 4.0, 2.0, 1.0, 0.5, 0.25])


def known_covariance_data(n=20000, seed=0):
    """Samples x = μ + R diag(√λ) z, z ~ N(0, I): covariance R diag(λ) Rᵀ, eigenvalues λ."""
    rng = np.random.default_rng(seed)
    d = len(VARIANCES)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    z = rng.normal(size=(n, d))
    mean = rng.normal(size=d) * 3
    return z * np.sqrt(VARIANCES) @ rotation.T + mean, rotation, mean


@pytest.mark.parametrize("k", [1, 2, 4])
def test_error_is_the_sum_of_the_discarded_eigenvalues_over_d(k):
    x, rotation, _ = known_covariance_data()
    d = x.shape[1]
    fitted = pca.fit(x, k)
    mse = pca.reconstruction_mse(fitted, x)
    # Exact on the fitted data, with the sample eigenvalues (covariance with 1/n).
    assert mse == pytest.approx(fitted.explained_variance[k:].sum() / d, rel=1e-10)
    assert mse == pytest.approx(fitted.discarded_variance / d, rel=1e-10)
    # And close to the true discarded variances (sampling error ~ 1/√n).
    assert mse == pytest.approx(VARIANCES[k:].sum() / d, rel=0.03)
    # The components span the leading axes of the rotation.
    cosines = np.linalg.svd(fitted.components @ rotation[:, :k])[1]
    assert cosines.min() > 0.99


def test_eigenvalues_match_the_covariance_matrix():
    x, _, _ = known_covariance_data(n=500, seed=1)
    fitted = pca.fit(x, 3)
    expected = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False, bias=True)))[::-1]
    np.testing.assert_allclose(fitted.explained_variance, expected, rtol=1e-9, atol=1e-12)
    assert fitted.explained_variance_ratio.sum() == pytest.approx(1.0)


def test_shapes_orthonormality_and_round_trip():
    x, _, mean = known_covariance_data(n=300, seed=2)
    fitted = pca.fit(x.reshape(300, 2, 3), 2)  # samples are flattened
    assert fitted.k == 2 and fitted.components.shape == (2, 6)
    np.testing.assert_allclose(fitted.components @ fitted.components.T, np.eye(2), atol=1e-12)
    codes = pca.transform(fitted, x)
    assert codes.shape == (300, 2)
    np.testing.assert_allclose(codes.mean(axis=0), 0, atol=1e-9)
    assert pca.reconstruct(fitted, x.reshape(300, 2, 3)).shape == (300, 2, 3)
    full = pca.fit(x, 6)
    np.testing.assert_allclose(pca.reconstruct(full, x), x, atol=1e-9)
    assert pca.reconstruction_mse(full, x) == pytest.approx(0, abs=1e-18)


def test_signs_are_deterministic():
    x, _, _ = known_covariance_data(n=200, seed=3)
    a, b = pca.fit(x, 3), pca.fit(x[::-1].copy(), 3)
    np.testing.assert_allclose(a.components, b.components, atol=1e-9)


def test_bad_k():
    x = np.ones((5, 4))
    for k in (0, 5):
        with pytest.raises(ValueError, match="k must be"):
            pca.fit(x, k)
    with pytest.raises(ValueError, match="at least one sample"):
        pca.fit(np.ones((0, 4)), 1)
