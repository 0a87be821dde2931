"""Transferability scores from the literature, beside RESQUE, as pure functions on arrays.

Each score takes the target data's features (or the source model's outputs on it) and its
labels and returns one float; all of them are *higher = better transfer expected*, the opposite of
RESQUE (lower = cheaper to reuse). They are written from the papers' formulas:

* LogME (You et al., ICML 2021): mean over classes of the maximised log evidence of a Bayesian
  linear regression from the features to the class's one-hot column, per sample.
* LEEP (Nguyen et al., ICML 2020): log expected empirical prediction of a classifier built from the
  source model's output probabilities and the empirical conditional P(target | source label).
* NCE (Tran et al., ICCV 2019): negative conditional entropy -H(Y | Z) of the target labels Y
  given the source model's predicted labels Z.
* H-score (Bao et al., ICIP 2019): tr(cov(f)^-1 cov(E[f | y])).
* Shrinkage H-score (Ibrahim et al., ICLR 2023): the same with the feature covariance replaced by
  its Ledoit-Wolf shrinkage estimate and the between-class covariance scaled by (1 - shrinkage).
* TransRate (Huang et al., ICML 2022): coding rate of the (centred) features minus their coding
  rate given the labels, R(Z, eps) - R(Z, eps | Y).
* GBC (Pandy et al., CVPR 2022): minus the sum, over ordered pairs of distinct classes, of the
  Bhattacharyya coefficients between per-class diagonal Gaussians fitted in a PCA space.

Inputs: ``features`` [N, D] (any float dtype, computed in float64), ``labels`` [N] (any integer
values; classes are the distinct values), ``outputs`` [N, Z] the source model's raw outputs
(logits, turned into probabilities with a softmax) and ``source_labels`` [N] (the source model's
predicted class per sample). Shapes that do not fit raise ValueError; data a score cannot be
computed on (fewer than two classes, non-finite values) raises DataError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

__all__ = [
    "TRANSFER_SCORES",
    "TransferScore",
    "gbc",
    "h_score",
    "leep",
    "logme",
    "nce",
    "shrinkage_h_score",
    "softmax",
    "transfer_scores",
    "transrate",
]

GBC_DIM = 64
"""GBC's PCA dimension (the paper reduces embeddings to 64 components before fitting)."""
TRANSRATE_EPS = 1e-2
"""TransRate's distortion eps (the paper leaves it free; eps**2 = 1e-4 here)."""
LOGME_MAX_ITER = 100
LOGME_TOL = 1e-6
LOGME_MAX_BETA = 1e12
"""Noise precision at which LogME's iteration stops: the features interpolate the labels (this
happens when N <= D), and the evidence has reached its limit."""


@dataclass(frozen=True)
class TransferScore:
    """What the ranking, the reports and the app say about one score."""

    name: str
    title: str
    reference: str
    needs: str  # "features" (embeddings) or "outputs" (the source model's outputs)
    higher_is_better: bool = True

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


TRANSFER_SCORES: dict[str, TransferScore] = {
    s.name: s
    for s in (
        TransferScore("logme", "LogME", "You et al. 2021", "features"),
        TransferScore("leep", "LEEP", "Nguyen et al. 2020", "outputs"),
        TransferScore("nce", "NCE", "Tran et al. 2019", "outputs"),
        TransferScore("h_score", "H-score", "Bao et al. 2019", "features"),
        TransferScore("shrinkage_h_score", "Shrinkage H-score", "Ibrahim et al. 2022", "features"),
        TransferScore("transrate", "TransRate", "Huang et al. 2022", "features"),
        TransferScore("gbc", "GBC", "Pandy et al. 2022", "features"),
    )
}
"""Score name -> its description, in table order. Every score here is higher-is-better."""


# ----------------------------------------------------------------------------- input checks
def _labels(labels: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Labels [N] as class indices 0..K-1 (K distinct values, K >= 2)."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must be [N] = [{n}], got shape {y.shape}")
    if y.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    classes, index = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise DataError(
            f"a transferability score needs at least 2 classes; the data has {classes.size}"
        )
    return index.reshape(n), int(classes.size)


def _features(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    f = np.asarray(features)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"features must be a non-empty [N, D] array, got shape {f.shape}")
    f = f.astype(np.float64, copy=False)
    if not np.isfinite(f).all():
        raise DataError("the features contain NaN or infinity: the model's layer overflowed")
    y, k = _labels(labels, f.shape[0])
    return f, y, k


def softmax(outputs: np.ndarray) -> np.ndarray:
    """Row-wise softmax of [N, Z] raw outputs (float64, rows sum to 1)."""
    z = np.asarray(outputs, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- shared work
class _Moments:
    """What several feature scores share, each part computed once when first needed: class
    indices and counts, the mean, the centred features, the centred and raw Gram matrices and
    their eigendecompositions, the class means.

    Float32 features (what the model gives) keep float32 for the N x D products (the Gram
    matrices and TransRate's Cholesky factors), which halves their cost; everything else, and
    every product of float64 features, is float64.
    """

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        raw = np.asarray(features)
        self.work = np.float32 if raw.dtype in (np.float32, np.float16) else np.float64
        self.f, self.y, self.k = _features(features, labels)
        self.n, self.d = self.f.shape
        self.onehot = np.zeros((self.n, self.k))
        self.onehot[np.arange(self.n), self.y] = 1.0
        self.counts = self.onehot.sum(axis=0)
        self.mean = self.f.mean(axis=0)
        self._cache: dict[str, object] = {}

    def _memo(self, name: str, make: Callable[[], object]):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    @property
    def centred(self) -> np.ndarray:
        """Z = F - mean [N, D], in the working precision."""
        return self._memo("centred", lambda: (self.f - self.mean).astype(self.work, copy=False))

    @property
    def gram(self) -> np.ndarray:
        """Z^T Z [D, D], float64."""
        return self._memo("gram", lambda: (self.centred.T @ self.centred).astype(np.float64))

    @property
    def raw_gram(self) -> np.ndarray:
        """F^T F [D, D] = Z^T Z + N mean mean^T (adding, so no precision is lost)."""
        return self._memo("raw_gram", lambda: self.gram + self.n * np.outer(self.mean, self.mean))

    @property
    def centred_eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (ascending) and eigenvectors of Z^T Z."""
        return self._memo("centred_eigh", lambda: np.linalg.eigh(self.gram))

    def top_components(self, dim: int) -> np.ndarray:
        """The ``dim`` leading eigenvectors of Z^T Z [D, dim], largest first."""

        def make():
            if "centred_eigh" in self._cache or dim >= self.d:
                vecs = self.centred_eigh[1]
            else:  # only the leading ones: cheaper than a full decomposition
                from scipy.linalg import eigh

                # In the working precision: the projection that uses them is computed in it.
                vecs = eigh(
                    self.gram.astype(self.work, copy=False),
                    subset_by_index=[self.d - dim, self.d - 1],
                    check_finite=False,
                )[1]
            return vecs[:, ::-1][:, :dim]

        return self._memo(f"top_{dim}", make)

    @property
    def class_sums(self) -> np.ndarray:
        """Y^T F [K, D]: each class's sum of feature rows (float64)."""
        return self._memo("class_sums", lambda: self.onehot.T @ self.f)

    @property
    def between_root(self) -> np.ndarray:
        """W [K, D] with W^T W = cov(E[f | y]), the covariance (1/N) of each sample's class
        mean: row k is sqrt(n_k / N) (mean_k - mean)."""

        def make():
            means = self.class_sums / self.counts[:, None] - self.mean
            return means * np.sqrt(self.counts / self.n)[:, None]

        return self._memo("between_root", make)


# ----------------------------------------------------------------------------- LogME
def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: log evidence per sample of Bayesian linear regression, averaged over classes.

    For each class k the target is its one-hot column y_k [N]; the model is y = F w + noise with
    prior w ~ N(0, I/alpha) and noise precision beta (no intercept, features as given). alpha
    and beta are set by the paper's fixed-point iteration (gamma = sum beta s_i / (alpha + beta
    s_i) over the eigenvalues s_i of F^T F; alpha = gamma / |m|^2; beta = (N - gamma) /
    |F m - y|^2), and the evidence

        N/2 log beta + D/2 log alpha - N/2 log 2pi - beta/2 |F m - y|^2 - alpha/2 |m|^2
        - 1/2 log det(alpha I + beta F^T F)

    is divided by N. Unit: nats per sample. Cost: one D x D (or N x N, whichever is smaller)
    eigendecomposition shared by all classes.
    """
    return _logme(_Moments(features, labels))


def _logme(m: _Moments, *, dual: bool | None = None) -> float:
    """``dual``: decompose F F^T [N, N] instead of F^T F [D, D] (default: when N < D)."""
    n, d = m.n, m.d
    if not (n < d if dual is None else dual):
        sigma, v = np.linalg.eigh(m.raw_gram)
        proj = v.T @ m.class_sums.T  # [D, K]: s_i * (u_i . y_k)
        keep = sigma > sigma.max() * 1e-12
        sigma = sigma[keep]
        x2 = proj[keep] ** 2 / sigma[:, None]  # (u_i . y_k)^2
    else:
        sigma, u = np.linalg.eigh(m.f @ m.f.T)
        keep = sigma > sigma.max() * 1e-12
        sigma = sigma[keep]
        x2 = (u[:, keep].T @ m.onehot) ** 2
    # |y_k|^2 of a 0/1 column is its count
    values = [_logme_one(sigma, x2[:, c], float(m.counts[c]), n, d) for c in range(m.k)]
    return float(np.mean(values))


def _logme_one(sigma: np.ndarray, x2: np.ndarray, y2: float, n: int, d: int) -> float:
    """Maximised evidence / N for one target, from the non-zero spectrum ``sigma`` [r] of F^T F
    and the squared projections ``x2`` [r] of the target on the matching left singular
    vectors; ``y2`` = |y|^2."""
    outside = max(y2 - float(x2.sum()), 0.0)  # the part of y that no feature direction reaches
    alpha, beta = 1.0, 1.0
    for _ in range(LOGME_MAX_ITER):
        t = alpha + beta * sigma
        gamma = float((beta * sigma / t).sum())
        m2 = float((beta**2 * sigma * x2 / t**2).sum())
        res = outside + float((x2 * (alpha / t) ** 2).sum())
        new_alpha = gamma / max(m2, 1e-300)
        new_beta = (n - gamma) / max(res, 1e-300)
        done = (
            abs(new_alpha - alpha) <= LOGME_TOL * alpha and abs(new_beta - beta) <= LOGME_TOL * beta
        )
        alpha, beta = new_alpha, new_beta
        if done:
            break
    t = alpha + beta * sigma
    m2 = float((beta**2 * sigma * x2 / t**2).sum())
    res = outside + float((x2 * (alpha / t) ** 2).sum())
    logdet = float(np.log(t).sum()) + (d - sigma.size) * np.log(alpha)
    evidence = (
        n / 2 * np.log(beta)
        + d / 2 * np.log(alpha)
        - n / 2 * np.log(2 * np.pi)
        - beta / 2 * res
        - alpha / 2 * m2
        - logdet / 2
    )
    return float(evidence / n)


# ----------------------------------------------------------------------------- LEEP, NCE
def leep(outputs: np.ndarray, labels: np.ndarray, *, probabilities: bool = False) -> float:
    """LEEP from the source model's outputs [N, Z] (logits; probabilities if ``probabilities``)
    and the target labels [N].

    With theta_i the source distribution over Z for sample i: P(y, z) = 1/N sum over samples of
    class y of theta_i(z); P(y | z) = P(y, z) / P(z); LEEP = 1/N sum_i log sum_z P(y_i | z)
    theta_i(z). Unit: nats, <= 0; 0 when each sample's target label is certain from its source
    prediction.
    """
    theta = np.asarray(outputs, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[0] == 0:
        raise ValueError(f"outputs must be a non-empty [N, Z] array, got shape {theta.shape}")
    if not np.isfinite(theta).all():
        raise DataError("the model's outputs contain NaN or infinity")
    theta = theta / theta.sum(axis=1, keepdims=True) if probabilities else softmax(theta)
    y, k = _labels(labels, theta.shape[0])
    n = theta.shape[0]
    joint = np.zeros((k, theta.shape[1]))
    np.add.at(joint, y, theta)
    joint /= n
    marginal = joint.sum(axis=0)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # [K, Z]
    expected = np.einsum("nz,nz->n", theta, cond[y])
    return float(np.mean(np.log(np.maximum(expected, 1e-300))))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE = -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z), from the source model's predicted labels
    Z [N] and the target labels Y [N] (empirical distributions). Unit: nats, <= 0; 0 when every
    source label determines the target label."""
    z = np.asarray(source_labels)
    if z.ndim != 1:
        raise ValueError(f"source labels must be [N], got shape {z.shape}")
    y, k = _labels(labels, z.shape[0])
    if z.dtype.kind not in "iub":
        raise ValueError(f"source labels must be integers, got dtype {z.dtype}")
    _, zi = np.unique(z, return_inverse=True)
    joint = np.zeros((k, int(zi.max()) + 1))
    np.add.at(joint, (y, zi.reshape(-1)), 1.0)
    joint /= y.size
    marginal = joint.sum(axis=0)
    nz = joint > 0
    cond = joint[nz] / np.broadcast_to(marginal, joint.shape)[nz]
    return float((joint[nz] * np.log(cond)).sum())


# ----------------------------------------------------------------------------- H-scores
def _cholesky(a: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of a symmetric positive definite ``a`` (only its lower triangle
    is read; the upper one of the result holds leftovers), or None if ``a`` is not positive
    definite. LAPACK's potrf directly, without NumPy's per-call copies and checks."""
    from scipy.linalg import lapack

    potrf = lapack.get_lapack_funcs("potrf", (a,))
    low, info = potrf(a, lower=True, clean=False, overwrite_a=False)
    return low if info == 0 else None


def _trace_solve(a: np.ndarray, w: np.ndarray) -> float | None:
    """tr(a^-1 W^T W) = |L^-1 W^T|_F^2 for a symmetric positive definite ``a`` = L L^T
    (Cholesky) and W [K, D]; None if ``a`` is not positive definite."""
    from scipy.linalg import solve_triangular

    low = _cholesky(a)
    if low is None:
        return None
    half = solve_triangular(low, w.T, lower=True, check_finite=False)
    return float((half * half).sum())


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score = tr(pinv(cov(f)) cov(E[f | y])) for features [N, D] and labels [N].

    Covariances are the 1/N (maximum-likelihood) ones; the pseudo-inverse handles a singular
    feature covariance. Dimensionless, in [0, K - 1]; invariant to any invertible affine map of
    the features (hence to scaling).
    """
    return _h_score(_Moments(features, labels))


def _h_score(m: _Moments) -> float:
    cov = m.gram / m.n
    fast = _trace_solve(cov, m.between_root)
    if fast is not None and np.isfinite(fast):
        return fast
    # singular covariance: the pseudo-inverse, from the eigendecomposition
    vals, vecs = m.centred_eigh
    keep = vals > max(float(vals.max()), 0.0) * 1e-12
    scaled = m.between_root @ (vecs[:, keep] / np.sqrt(vals[keep] / m.n))
    return float((scaled * scaled).sum())


def _ledoit_wolf_shrinkage(m: _Moments) -> float:
    """Ledoit & Wolf's (2004) shrinkage intensity for the centred features: min(b2, d2) / d2
    with S = Z^T Z / N, mu = tr(S) / D, d2 = |S - mu I|_F^2 and b2 = 1/N^2 sum_i |z_i z_i^T -
    S|_F^2 (= (sum_i |z_i|^4 - N |S|_F^2) / N^2)."""
    s = m.gram / m.n
    mu = float(np.trace(s)) / m.d
    s2 = float((s * s).sum())
    d2 = s2 - m.d * mu**2
    if d2 <= 0:
        return 0.0  # S is already a multiple of the identity
    row4 = float((np.einsum("nd,nd->n", m.centred, m.centred).astype(np.float64) ** 2).sum())
    b2 = max((row4 - m.n * s2) / m.n**2, 0.0)
    return min(b2, d2) / d2


def shrinkage_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """Shrinkage H-score: tr(S_a^-1 (1 - a) cov(E[f | y])), S_a = (1 - a) cov(f) + a mu I with
    mu = tr(cov(f)) / D and a the Ledoit-Wolf shrinkage intensity of the centred features
    (:func:`_ledoit_wolf_shrinkage`). Dimensionless, in [0, K - 1]; invariant to scaling the
    features."""
    return _shrinkage_h_score(_Moments(features, labels))


def _shrinkage_h_score(m: _Moments) -> float:
    cov = m.gram / m.n
    mu = float(np.trace(cov)) / m.d
    if mu <= 0:
        raise DataError("the features are constant: no score can separate the classes")
    a = _ledoit_wolf_shrinkage(m)
    shrunk = (1.0 - a) * cov + a * mu * np.eye(m.d)
    value = _trace_solve(shrunk, np.sqrt(1.0 - a) * m.between_root)
    if value is None:  # a = 0 and a singular covariance: the plain H-score's pseudo-inverse
        return _h_score(m)
    return value


# ----------------------------------------------------------------------------- TransRate
def _coding_rate(gram: np.ndarray, n: int, d: int, eps: float) -> float:
    """R = 1/2 log det(I + d / (n eps^2) gram) for the Gram matrix of n samples of dimension d
    (either Z^T Z [d, d] or Z Z^T [n, n]: their determinants agree)."""
    a = np.eye(gram.shape[0], dtype=gram.dtype) + gram * gram.dtype.type(d / (n * eps**2))
    low = _cholesky(a)
    if low is None:
        return 0.5 * float(np.linalg.slogdet(a)[1])
    return float(np.log(np.diag(low).astype(np.float64)).sum())  # = 1/2 log det


def transrate(features: np.ndarray, labels: np.ndarray, *, eps: float = TRANSRATE_EPS) -> float:
    """TransRate = R(Z, eps) - sum_k (n_k / N) R(Z_k, eps), Z the centred features [N, D], Z_k
    the rows of class k, R(Z, eps) = 1/2 log det(I_D + D / (n eps^2) Z^T Z) the coding rate of
    n rows. Unit: nats; >= 0 (log det is concave); depends on the features' scale through eps."""
    return _transrate(_Moments(features, labels), eps)


def _transrate(m: _Moments, eps: float = TRANSRATE_EPS) -> float:
    z = m.centred
    order = np.argsort(m.y, kind="stable")  # each class's rows once, in one contiguous block
    ends = np.cumsum(m.counts.astype(np.int64))
    given = 0.0
    for c in range(m.k):
        zc = z[order[ends[c] - int(m.counts[c]) : ends[c]]]
        nc = zc.shape[0]
        gram = zc @ zc.T if nc < m.d else zc.T @ zc
        given += nc / m.n * _coding_rate(gram, nc, m.d, eps)
    total = _coding_rate(m.gram if m.d <= m.n else z @ z.T, m.n, m.d, eps)
    return float(total - given)


# ----------------------------------------------------------------------------- GBC
def gbc(features: np.ndarray, labels: np.ndarray, *, dim: int = GBC_DIM) -> float:
    """GBC = -sum over ordered pairs (i, j), i != j, of BC(c_i, c_j) = exp(-D_B(c_i, c_j)).

    Features [N, D] are centred and projected on their top min(``dim``, D) principal directions;
    each class is a Gaussian with its mean and diagonal (unbiased) variance there; D_B is the
    Bhattacharyya distance between two such Gaussians, 1/8 sum (mu_i - mu_j)^2 / s + 1/2 sum
    log(s / sqrt(s_i s_j)), s = (s_i + s_j) / 2. Dimensionless, in [-K(K-1), 0]; 0 = classes
    fully separated. Every class needs 2+ samples.
    """
    return _gbc(_Moments(features, labels), dim)


def _gbc(m: _Moments, dim: int = GBC_DIM) -> float:
    if m.counts.min() < 2:
        raise DataError("GBC needs at least 2 samples of every class (a class variance)")
    z = (m.centred @ m.top_components(min(dim, m.d)).astype(m.work)).astype(np.float64)
    sums = m.onehot.T @ z
    means = sums / m.counts[:, None]
    # unbiased per-class variance: (sum z^2 - n mean^2) / (n - 1)
    var = (m.onehot.T @ (z * z) - m.counts[:, None] * means**2) / (m.counts[:, None] - 1)
    var = np.maximum(var, 1e-12 * max(float(var.max()), 1e-300))
    log_var = np.log(var)
    total = 0.0
    for i in range(m.k):
        s = (var[i] + var) / 2  # [K, dim]: this class against every class
        db = ((means[i] - means) ** 2 / s).sum(axis=1) / 8 + 0.5 * (
            np.log(s).sum(axis=1) - 0.5 * (log_var[i].sum() + log_var.sum(axis=1))
        )
        bc = np.exp(-db)
        total += float(bc.sum() - bc[i])
    return -total


# ----------------------------------------------------------------------------- all together
_FEATURE_SCORES: dict[str, Callable[[_Moments], float]] = {
    "logme": _logme,
    "h_score": _h_score,
    "shrinkage_h_score": _shrinkage_h_score,
    "transrate": _transrate,
    "gbc": _gbc,
}


def transfer_scores(
    features: np.ndarray,
    labels: np.ndarray,
    outputs: np.ndarray | None = None,
    *,
    names: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Every score in ``names`` (default: all of :data:`TRANSFER_SCORES`) for one data set.

    ``features`` [N, D] and ``labels`` [N] feed the feature scores, which share their Gram
    matrices and eigendecompositions; ``outputs`` [N, Z] (the source model's logits on the same
    samples) feed LEEP and NCE (Z = argmax of the outputs), which are left out when ``outputs``
    is None or not 2-D. A score the data cannot support (DataError, e.g. a class of one sample
    for GBC, or a non-finite result) is left out; the others are still returned.
    """
    wanted = names if names is not None else tuple(TRANSFER_SCORES)
    unknown = [n for n in wanted if n not in TRANSFER_SCORES]
    if unknown:
        known = ", ".join(TRANSFER_SCORES)
        raise ValueError(f"unknown transferability score(s) {unknown}; known: {known}")
    moments = _Moments(features, labels) if any(n in _FEATURE_SCORES for n in wanted) else None
    out: dict[str, float] = {}
    for name in wanted:
        try:
            if name in _FEATURE_SCORES:
                value = _FEATURE_SCORES[name](moments)
            elif outputs is None or np.ndim(outputs) != 2:
                continue
            elif name == "leep":
                value = leep(outputs, labels)
            else:
                value = nce(np.argmax(outputs, axis=1), labels)
        except DataError:
            continue
        if np.isfinite(value):
            out[name] = float(value)
    return out
