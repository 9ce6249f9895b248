"""HMM kernels against plain NumPy references, textbook values and hmmlearn's C code."""

import numpy as np
import pytest
from scipy.special import logsumexp

from latentem.kernels.hmm import (
    LONG_SEQUENCE as LONG,
)
from latentem.kernels.hmm import (
    forward_backward,
    forward_backward_scaled,
    forward_loglik,
    scale_emissions,
    sequence_groups,
    viterbi,
)


def reference_forward_backward(log_b, startprob, transmat):
    """Log-space forward-backward for one sequence: the obvious O(T K^2) recursion."""
    T, K = log_b.shape
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(startprob), np.log(transmat)
    fwd = np.empty((T, K))
    bwd = np.zeros((T, K))
    fwd[0] = log_pi + log_b[0]
    for t in range(1, T):
        fwd[t] = logsumexp(fwd[t - 1][:, None] + log_a, axis=0) + log_b[t]
    for t in range(T - 2, -1, -1):
        bwd[t] = logsumexp(log_a + (log_b[t + 1] + bwd[t + 1])[None, :], axis=1)
    ll = logsumexp(fwd[-1])
    post = np.exp(fwd + bwd - ll)
    xi = np.zeros((K, K))
    for t in range(T - 1):
        xi += np.exp(fwd[t][:, None] + log_a + (log_b[t + 1] + bwd[t + 1])[None, :] - ll)
    return post, xi, ll


def reference_viterbi(log_b, startprob, transmat):
    T, K = log_b.shape
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(startprob), np.log(transmat)
    delta = log_pi + log_b[0]
    psi = np.zeros((T, K), dtype=int)
    for t in range(1, T):
        scores = delta[:, None] + log_a
        psi[t] = np.argmax(scores, axis=0)
        delta = scores.max(axis=0) + log_b[t]
    path = [int(np.argmax(delta))]
    for t in range(T - 1, 0, -1):
        path.append(psi[t, path[-1]])
    return np.array(path[::-1]), delta.max()


def random_problem(rng, K, lengths, scale=3.0):
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    log_b = rng.normal(size=(offsets[-1], K)) * scale
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    return log_b, offsets, startprob, transmat


def run_fb(log_b, offsets, startprob, transmat, max_groups=64, path="jit"):
    groups = sequence_groups(offsets, max_groups)
    weights = np.ones(len(offsets) - 1)
    fb = getattr(forward_backward, path)
    post, start, trans, ll = fb(log_b, offsets, groups, startprob, transmat, weights)
    return post, start.sum(0), trans.sum(0), ll


@pytest.mark.parametrize("K", [1, 2, 5])
def test_forward_backward_matches_reference(K, kernel_path):
    rng = np.random.default_rng(K)
    lengths = [1, 7, 30, 2, 15]
    log_b, offsets, startprob, transmat = random_problem(rng, K, lengths)
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    fwd_only = getattr(forward_loglik, kernel_path)(
        log_b, offsets, sequence_groups(offsets), startprob, transmat
    )
    xi_total = np.zeros((K, K))
    start_total = np.zeros(K)
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        ref_post, ref_xi, ref_ll = reference_forward_backward(log_b[a:b], startprob, transmat)
        np.testing.assert_allclose(post[a:b], ref_post, rtol=1e-10, atol=1e-12)
        assert ll[s] == pytest.approx(ref_ll, rel=1e-12)
        assert fwd_only[s] == pytest.approx(ref_ll, rel=1e-12)
        xi_total += ref_xi
        start_total += ref_post[0]
    np.testing.assert_allclose(trans, xi_total, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(start, start_total, rtol=1e-12)
    fwd_only = getattr(forward_loglik, kernel_path)(
        log_b, offsets, sequence_groups(offsets), startprob, transmat
    )
    np.testing.assert_allclose(fwd_only, ll, rtol=1e-12)


def test_textbook_two_state_values(kernel_path):
    # Two coins: state 0 fair, state 1 biased towards heads (1). Observations H, H, T.
    startprob = np.array([0.5, 0.5])
    transmat = np.array([[0.9, 0.1], [0.2, 0.8]])
    emit = np.array([[0.5, 0.5], [0.2, 0.8]])  # P(obs | state), obs 0 = tails, 1 = heads
    obs = np.array([1, 1, 0])
    log_b = np.log(emit[:, obs].T)
    offsets = np.array([0, 3], dtype=np.int64)
    # Brute force over all 8 state paths.
    paths = np.array(np.meshgrid(*[[0, 1]] * 3, indexing="ij")).reshape(3, -1).T
    probs = np.array(
        [
            startprob[p[0]]
            * np.prod([transmat[p[t - 1], p[t]] for t in (1, 2)])
            * np.prod([emit[p[t], obs[t]] for t in range(3)])
            for p in paths
        ]
    )
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    assert ll[0] == pytest.approx(np.log(probs.sum()), rel=1e-14)
    for t in range(3):
        for k in range(2):
            expected = probs[paths[:, t] == k].sum() / probs.sum()
            assert post[t, k] == pytest.approx(expected, rel=1e-12)
    states, logprob = getattr(viterbi, kernel_path)(
        log_b, offsets, sequence_groups(offsets), np.log(startprob), np.log(transmat)
    )
    np.testing.assert_array_equal(states, paths[np.argmax(probs)])
    assert logprob[0] == pytest.approx(np.log(probs.max()), rel=1e-14)


def test_no_underflow_with_extreme_outliers(kernel_path):
    rng = np.random.default_rng(0)
    log_b, offsets, startprob, transmat = random_problem(rng, 3, [500])
    log_b[100] = [-1e5, -2e5, -3e5]  # a wild outlier: every state nearly impossible
    log_b[200] = [-800.0, -790.0, -2000.0]
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    assert np.isfinite(post).all() and np.isfinite(ll).all()
    np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-12)
    ref_post, _, ref_ll = reference_forward_backward(log_b, startprob, transmat)
    assert ll[0] == pytest.approx(ref_ll, rel=1e-12)
    np.testing.assert_allclose(post, ref_post, atol=1e-10)


def test_structural_zeros_and_impossible_sequences(kernel_path):
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])  # left-right
    rng = np.random.default_rng(1)
    log_b = rng.normal(size=(12, 3))
    offsets = np.array([0, 6, 12], dtype=np.int64)
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    assert np.all(post[[0, 6], 1:] == 0)
    assert trans[1, 0] == 0 and trans[2, 0] == 0 and trans[2, 1] == 0 and trans[0, 2] == 0
    # A label that forbids state 0 at the start makes the second sequence impossible.
    log_b[6, 0] = -np.inf
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    assert np.isfinite(ll[0]) and ll[1] == -np.inf
    assert np.isnan(post[6:]).all() and np.isfinite(post[:6]).all()


def test_results_do_not_depend_on_grouping_or_order(kernel_path):
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 40, size=300)
    log_b, offsets, startprob, transmat = random_problem(rng, 4, lengths)
    a = run_fb(log_b, offsets, startprob, transmat, max_groups=1, path=kernel_path)
    b = run_fb(log_b, offsets, startprob, transmat, max_groups=64, path=kernel_path)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-12)
    np.testing.assert_array_equal(a[3], b[3])
    # Reverse the order of the sequences.
    order = np.arange(len(lengths))[::-1]
    pieces = [log_b[offsets[s] : offsets[s + 1]] for s in order]
    rev_offsets = np.concatenate(([0], np.cumsum(lengths[order]))).astype(np.int64)
    c = run_fb(np.concatenate(pieces), rev_offsets, startprob, transmat, path=kernel_path)
    np.testing.assert_allclose(c[3][::-1], a[3], rtol=1e-13)
    np.testing.assert_allclose(c[2], a[2], rtol=1e-11)


def test_viterbi_matches_reference(kernel_path):
    rng = np.random.default_rng(3)
    lengths = [1, 2, 50, 13]
    log_b, offsets, startprob, transmat = random_problem(rng, 4, lengths)
    states, logprob = getattr(viterbi, kernel_path)(
        log_b, offsets, sequence_groups(offsets), np.log(startprob), np.log(transmat)
    )
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        path, lp = reference_viterbi(log_b[a:b], startprob, transmat)
        np.testing.assert_array_equal(states[a:b], path)
        assert logprob[s] == pytest.approx(lp, rel=1e-12)


@pytest.mark.parametrize("K", range(1, 9))
def test_viterbi_in_vector_registers_matches_reference(kernel_path, K):
    """Sequences of VITERBI_VEC_ROWS rows or more with at most 8 states take the
    vector-register recursion: same paths (ties to the lowest state), same sums."""
    from latentem.kernels.hmm import VITERBI_VEC_ROWS

    rng = np.random.default_rng(30 + K)
    lengths = [VITERBI_VEC_ROWS, 700, VITERBI_VEC_ROWS - 1, 300]
    log_b, offsets, startprob, transmat = random_problem(rng, K, lengths)
    log_b[720:760] = 0.0  # identical emissions: ties broken by the transitions ...
    transmat[0] = 1.0 / K  # ... some of them uniform
    transmat = transmat / transmat.sum(axis=1, keepdims=True)
    if K > 2:
        transmat[1, 2] = 0.0  # a structural zero (-inf)
        transmat[1] /= transmat[1].sum()
    with np.errstate(divide="ignore"):
        log_pi, log_a = np.log(startprob), np.log(transmat)
    states, logprob = getattr(viterbi, kernel_path)(
        log_b, offsets, sequence_groups(offsets), log_pi, log_a
    )
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        path, lp = reference_viterbi(log_b[a:b], startprob, transmat)
        np.testing.assert_array_equal(states[a:b], path)
        assert logprob[s] == pytest.approx(lp, rel=1e-12)


def test_against_hmmlearn_c_code(kernel_path):
    from hmmlearn import _hmmc

    rng = np.random.default_rng(4)
    log_b, offsets, startprob, transmat = random_problem(rng, 3, [80])
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    log_pi, log_a = np.log(startprob), np.log(transmat)
    ref_ll, fwd = _hmmc.forward_log(startprob, transmat, log_b)
    bwd = _hmmc.backward_log(startprob, transmat, log_b)
    ref_post = np.exp(fwd + bwd - ref_ll)
    ref_xi = np.exp(_hmmc.compute_log_xi_sum(fwd, transmat, bwd, log_b))
    assert ll[0] == pytest.approx(ref_ll, rel=1e-12)
    np.testing.assert_allclose(post, ref_post, rtol=1e-9)
    np.testing.assert_allclose(trans, ref_xi, rtol=1e-9)
    ref_lp, ref_path = _hmmc.viterbi(startprob, transmat, log_b)
    states, lp = getattr(viterbi, kernel_path)(
        log_b, offsets, sequence_groups(offsets), log_pi, log_a
    )
    np.testing.assert_array_equal(states, ref_path)
    assert lp[0] == pytest.approx(ref_lp, rel=1e-12)


def test_sequence_weights_scale_the_counts(kernel_path):
    rng = np.random.default_rng(6)
    lengths = [30, LONG, 5]
    log_b, offsets, startprob, transmat = random_problem(rng, 3, lengths)
    groups = sequence_groups(offsets)
    w = np.array([0.5, 2.0, 0.0])
    post, start, trans, ll = getattr(forward_backward, kernel_path)(
        log_b, offsets, groups, startprob, transmat, w
    )
    ref_trans = np.zeros((3, 3))
    ref_start = np.zeros(3)
    for s in range(3):
        a, b = offsets[s], offsets[s + 1]
        ref_post, ref_xi, _ = reference_forward_backward(log_b[a:b], startprob, transmat)
        ref_trans += w[s] * ref_xi
        ref_start += w[s] * ref_post[0]
        np.testing.assert_allclose(post[a:b], ref_post, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(trans.sum(0), ref_trans, rtol=1e-9)
    np.testing.assert_allclose(start.sum(0), ref_start, rtol=1e-9)


def test_sequence_groups_cover_all_sequences():
    offsets = np.concatenate(([0], np.cumsum([5] * 10 + [1000] + [1] * 500))).astype(np.int64)
    groups = sequence_groups(offsets, 8)
    assert groups[0] == 0 and groups[-1] == 511
    assert np.all(np.diff(groups) > 0) and len(groups) <= 9


# K <= 8: the vector kernel (padded to 8 states below 8); K = 9: two threads.
@pytest.mark.parametrize("K", [4, 8, 9])
def test_long_sequences_take_their_own_path_and_agree(K):
    from latentem.kernels.hmm import LONG_SEQUENCE

    rng = np.random.default_rng(5)
    lengths = [LONG_SEQUENCE + 7, 3, 40]
    log_b, offsets, startprob, transmat = random_problem(rng, K, lengths)
    # Row 1000 fits only state 0, which is almost never entered: a scaling factor
    # near 1e-120 (the log-likelihood takes such tiny ones one by one).
    transmat[:, 0] = 1e-120
    transmat /= transmat.sum(axis=1, keepdims=True)
    log_b[1000] = -1000.0
    log_b[1000, 0] = 0.0
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat)
    fwd_only = forward_loglik(log_b, offsets, sequence_groups(offsets), startprob, transmat)
    xi_total = np.zeros((K, K))
    start_total = np.zeros(K)
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        ref_post, ref_xi, ref_ll = reference_forward_backward(log_b[a:b], startprob, transmat)
        np.testing.assert_allclose(post[a:b], ref_post, rtol=1e-9, atol=1e-12)
        assert ll[s] == pytest.approx(ref_ll, rel=1e-12)
        assert fwd_only[s] == pytest.approx(ref_ll, rel=1e-12)
        xi_total += ref_xi
        start_total += ref_post[0]
    np.testing.assert_allclose(trans, xi_total, rtol=1e-9)
    np.testing.assert_allclose(start, start_total, rtol=1e-9)
    # An impossible long sequence is reported, not turned into numbers, whichever
    # half (forward recursion's or backward one's) the impossible row lies in.
    for row in (0, 100, LONG_SEQUENCE - 3, LONG_SEQUENCE + 6):
        bad = log_b.copy()
        bad[offsets[0] + row] = -np.inf
        post, start, trans, ll = run_fb(bad, offsets, startprob, transmat)
        assert ll[0] == -np.inf and np.isnan(post[: offsets[1]]).all()
        assert np.isfinite(ll[1:]).all()
        fwd_only = forward_loglik(bad, offsets, sequence_groups(offsets), startprob, transmat)
        assert fwd_only[0] == -np.inf and np.isfinite(fwd_only[1:]).all()


def test_posteriors_hold_no_subnormal_numbers(kernel_path):
    # Far-apart states give emission ratios like exp(-710): they are flushed to zero
    # rather than carried as subnormal numbers (which slow arithmetic 100-fold).
    rng = np.random.default_rng(7)
    log_b, offsets, startprob, transmat = random_problem(rng, 3, [400])
    log_b[:, 1] -= 710.0
    post, start, trans, ll = run_fb(log_b, offsets, startprob, transmat, path=kernel_path)
    tiny = np.finfo(np.float64).tiny
    assert np.all((post == 0) | (np.abs(post) >= tiny))
    ref_post, _, ref_ll = reference_forward_backward(log_b, startprob, transmat)
    assert ll[0] == pytest.approx(ref_ll, rel=1e-12)
    np.testing.assert_allclose(post, ref_post, atol=1e-250)


def reference_scale(log_b):
    """exp(log_b - row max), flushed to zero below exp(-500); all -inf rows stay zero."""
    shift = log_b.max(axis=1)
    safe = np.where(np.isfinite(shift), shift, 0.0)
    d = log_b - safe[:, None]
    with np.errstate(under="ignore"):
        return np.where(d < -500.0, 0.0, np.exp(d)), shift


def test_scaled_emissions_match_numpy(kernel_path):
    rng = np.random.default_rng(8)
    log_b = rng.normal(size=(1000, 7)) * rng.choice([1.0, 30.0, 400.0], size=(1000, 1))
    log_b[3] = -np.inf  # an impossible row
    log_b[4, 2:] = -np.inf  # excluded states
    log_b[5] = [-800.0, -1e5, 0.0, -499.0, -501.0, -700.0, -745.0]  # around the flush
    log_b[6] = [1e300, -1e300, 0.0, 5.0, -5.0, 1.0, 2.0]
    scaled, shift = getattr(scale_emissions, kernel_path)(log_b)
    ref, ref_shift = reference_scale(log_b)
    np.testing.assert_array_equal(shift, ref_shift)
    np.testing.assert_allclose(scaled, ref, rtol=1e-15, atol=0)
    assert np.all(scaled[np.arange(1000) != 3].max(axis=1) == 1.0)


@pytest.mark.filterwarnings("ignore::latentem.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["spherical", "diag", "full", "tied"])
def test_fused_gaussian_scaled_prob_matches_log_prob(covariance_type, kernel_path):
    from latentem.kernels import small_rows

    with small_rows(0 if kernel_path == "jit" else 10**9):
        _check_fused_scaled_prob(covariance_type)


def _check_fused_scaled_prob(covariance_type):
    from latentem import GaussianHMM

    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(size=(300, 3)), rng.normal(8.0, 1.0, size=(300, 3))])
    model = GaussianHMM(4, covariance_type, n_iter=2, random_state=0).fit(X)
    fam = model.emission
    scaled, shift = fam.scaled_prob(X)
    ref, ref_shift = reference_scale(fam.log_prob(X))
    np.testing.assert_allclose(shift, ref_shift, rtol=1e-14)
    np.testing.assert_allclose(scaled, ref, rtol=1e-13, atol=1e-300)
    # With gaps, the family scales its marginal log-densities instead.
    X[::7, 1] = np.nan
    X[::11] = np.nan
    scaled, shift = fam.scaled_prob(X)
    ref, ref_shift = reference_scale(fam.log_prob(X))
    np.testing.assert_array_equal(shift, ref_shift)
    np.testing.assert_allclose(scaled, ref, rtol=1e-15, atol=0)


def test_vec8_lanes_match_numpy():
    from numba import njit

    from latentem.kernels.vec8 import vadd, vfma, vlane, vmul, vrow, vscale, vstore, vsum, vzero

    @njit
    def ops(x, out):
        a, b = vrow(x, 0), vrow(x, 1)
        vstore(out, 0, vfma(vzero(), vlane(a, 3), b))
        vstore(out, 1, vadd(vmul(a, b), vscale(b, 2.5)))
        return vsum(a)

    x = np.random.default_rng(0).normal(size=(2, 8))
    out = np.empty((2, 8))
    total = ops(x, out)
    np.testing.assert_allclose(out[0], x[0, 3] * x[1], rtol=1e-15)
    np.testing.assert_allclose(out[1], x[0] * x[1] + 2.5 * x[1], rtol=1e-15)
    assert total == pytest.approx(x[0].sum(), rel=1e-15)


@pytest.mark.parametrize("D", [1, 4])  # one feature: its sums stay in registers
@pytest.mark.parametrize("K", [3, 8])
def test_diag_gaussian_vector_kernels_match_numpy(K, D, kernel_path):
    from latentem.kernels.hmm import diag_gaussian_scaled8, diag_gaussian_stats8
    from latentem.kernels.hmm_diag_gaussian8 import diag_gaussian_logprob8

    rng = np.random.default_rng(K)
    n = 500
    X = rng.normal(scale=3.0, size=(n, D))
    X[7] += 40.0  # far from every state: exp flushes some entries to zero
    means = rng.normal(scale=3.0, size=(K, D))
    var = rng.uniform(0.2, 2.0, size=(K, D))
    logp = -0.5 * (
        D * np.log(2 * np.pi) + np.log(var).sum(1) + (((X[:, None, :] - means) ** 2) / var).sum(2)
    )
    cols = np.zeros((2 * D + 1, 8))
    cols[:D, :K] = means.T
    cols[D : 2 * D, :K] = (1.0 / np.sqrt(var)).T
    cols[2 * D] = -np.inf
    cols[2 * D, :K] = -0.5 * (D * np.log(2 * np.pi) + np.log(var).sum(1))
    scaled, shift = np.empty((n, K)), np.empty(n)
    getattr(diag_gaussian_scaled8, kernel_path)(X, cols, scaled, shift)
    ref, ref_shift = reference_scale(logp)
    np.testing.assert_allclose(shift, ref_shift, rtol=1e-13)
    np.testing.assert_allclose(scaled, ref, rtol=1e-12, atol=1e-300)
    assert (scaled == 0).any()
    out = np.empty((n, K))
    getattr(diag_gaussian_logprob8, kernel_path)(X, cols, out)
    np.testing.assert_allclose(out, logp, rtol=1e-12)

    W = rng.dirichlet(np.ones(K), size=n)
    means_t = np.zeros((D, 8))
    means_t[:, :K] = means.T
    nk, S, Q = getattr(diag_gaussian_stats8, kernel_path)(X, W, means_t)
    d = X[:, None, :] - means
    np.testing.assert_allclose(nk, W.sum(0), rtol=1e-13)
    np.testing.assert_allclose(S, (W[:, :, None] * d).sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Q[:, 0], (W[:, :, None] * d**2).sum(0), rtol=1e-12)


def test_long_sequence_from_a_strided_array():
    # A view with a column stride (not C-contiguous) takes the same vector path.
    rng = np.random.default_rng(11)
    log_b, offsets, startprob, transmat = random_problem(rng, 8, [LONG + 3])
    scaled, shift = scale_emissions(log_b)
    wide_scaled = np.zeros((log_b.shape[0], 16))
    wide_scaled[:, ::2] = scaled
    groups = sequence_groups(offsets)
    w = np.ones(1)
    a = forward_backward_scaled(scaled, shift, offsets, groups, startprob, transmat, w)
    b = forward_backward_scaled(wide_scaled[:, ::2], shift, offsets, groups, startprob, transmat, w)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
