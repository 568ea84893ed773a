"""Principal component analysis with NumPy's SVD: the linear baseline of an autoencoder.

Notes 4.1.2: a single-hidden-layer linear autoencoder with MSE loss and k < d hidden units
learns the same subspace as PCA with k components (without the orthogonality of PCA's
basis), so PCA's reconstruction error is the best any such autoencoder can reach.

Definitions, for training samples x_1..x_n in R^d (rows of X, flattened):

    mean        μ = (1/n) Σ_i x_i
    centred     X_c = X − μ = U S Vᵀ          (thin SVD, s_1 ≥ s_2 ≥ ... ≥ 0)
    covariance  C = X_cᵀ X_c / n = V diag(λ) Vᵀ,  λ_j = s_j² / n
    components  the first k rows of Vᵀ: W (k, d), orthonormal rows
    transform   z = W (x − μ)                  (k,) codes
    reconstruct x̂ = Wᵀ z + μ = μ + Wᵀ W (x − μ)

The covariance uses 1/n (not 1/(n − 1)) so that the identity below is exact on the
training data: the mean squared error per element of the reconstruction is

    MSE = (1/(n d)) Σ_i ‖x_i − x̂_i‖² = (1/d) Σ_{j > k} λ_j,

the discarded eigenvalues divided by the number of features d. (MSE is "per element", the
same reduction as the ``mse`` loss and metric, so autoencoder and PCA errors compare
directly.)
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class PCA:
    """A fitted PCA: ``mean`` (d,), ``components`` (k, d) with orthonormal rows, and
    ``explained_variance`` (min(n, d),): every eigenvalue λ_j of the covariance, largest
    first (not only the k kept, so the discarded variance is known)."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """λ_j / Σ λ, for every eigenvalue (zeros when the data have no variance)."""
        total = float(self.explained_variance.sum())
        if total <= 0:
            return np.zeros_like(self.explained_variance)
        return self.explained_variance / total

    @property
    def discarded_variance(self) -> float:
        """Σ_{j > k} λ_j: the training MSE per element times d."""
        return float(self.explained_variance[self.k:].sum())


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), int(np.prod(x.shape[1:], dtype=np.int64)))


def fit(x, k: int) -> PCA:
    """Fit PCA with ``k`` components on samples ``x`` (n, ...) (flattened to (n, d)).

    1 <= k <= d; a k above min(n, d) keeps only min(n, d) components (the rest of the
    spectrum is zero). Signs are fixed so that each component's largest-magnitude entry is
    positive (an SVD's signs are arbitrary).
    """
    x = _flat(x)
    n, d = x.shape
    if n == 0:
        raise ValueError("PCA needs at least one sample")
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the {d} features; got {k}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    vt = vt[:k]
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    return PCA(mean=mean, components=vt, explained_variance=s ** 2 / n)


def transform(pca: PCA, x) -> np.ndarray:
    """Codes z = W (x − μ): (n, ...) -> (n, k)."""
    return (_flat(x) - pca.mean) @ pca.components.T


def inverse_transform(pca: PCA, z) -> np.ndarray:
    """x̂ = Wᵀ z + μ: (n, k) -> (n, d)."""
    return np.asarray(z, dtype=np.float64) @ pca.components + pca.mean


def reconstruct(pca: PCA, x) -> np.ndarray:
    """x̂ = μ + Wᵀ W (x − μ), in the shape of ``x`` (n, ...)."""
    x = np.asarray(x, dtype=np.float64)
    return inverse_transform(pca, transform(pca, x)).reshape(x.shape)


def reconstruction_mse(pca: PCA, x) -> float:
    """(1/(n d)) Σ_i ‖x_i − x̂_i‖²: mean squared error per element; on the data PCA was fitted
    on this equals ``discarded_variance / d``."""
    x = _flat(x)
    if len(x) == 0:
        raise ValueError("no samples to reconstruct")
    return float(np.mean((x - inverse_transform(pca, transform(pca, x))) ** 2))
