"""The many-sequence HMM kernels (sequences side by side in vector lanes) against
the NumPy references and the one-sequence kernels."""

import numpy as np
import pytest
from test_hmm_kernels import random_problem, reference_forward_backward, reference_viterbi

from latentem.kernels import hmm, hmm_lanes
from latentem.kernels.hmm import scale_emissions, sequence_groups

# ragged lengths, many of one row, a count not divisible by the number of lanes
LENGTHS = [1, 7, 1, 30, 2, 15, 1, 1, 64, 3, 9, 1, 40, 5, 1, 22, 17]


def _problem(K, lengths, seed):
    rng = np.random.default_rng(seed)
    log_b, offsets, startprob, transmat = random_problem(rng, K, lengths)
    return rng, log_b, offsets, startprob, transmat


@pytest.mark.parametrize("K", [1, 2, 3, 8, 10])
@pytest.mark.parametrize("max_groups", [64, 5])
def test_lanes_match_the_reference(K, max_groups):
    rng, log_b, offsets, startprob, transmat = _problem(K, LENGTHS, K)
    groups = sequence_groups(offsets, max_groups)
    scaled, shift = scale_emissions.jit(log_b)
    w = rng.uniform(0.5, 2.0, size=len(LENGTHS))
    post, starts, trans, ll = hmm_lanes.forward_backward_lanes_jit(
        scaled, shift, offsets, groups, startprob, transmat, w, np.empty(scaled.shape)
    )
    fwd = hmm_lanes.forward_loglik_lanes_jit(scaled, shift, offsets, groups, startprob, transmat)
    assert starts.shape == (len(groups) - 1, K) and trans.shape == (len(groups) - 1, K, K)
    xi_total, start_total = np.zeros((K, K)), np.zeros(K)
    for s in range(len(LENGTHS)):
        a, b = offsets[s], offsets[s + 1]
        ref_post, ref_xi, ref_ll = reference_forward_backward(log_b[a:b], startprob, transmat)
        np.testing.assert_allclose(post[a:b], ref_post, rtol=1e-10, atol=1e-12)
        assert ll[s] == pytest.approx(ref_ll, rel=1e-12)
        assert fwd[s] == pytest.approx(ref_ll, rel=1e-12)
        xi_total += w[s] * ref_xi
        start_total += w[s] * ref_post[0]
    np.testing.assert_allclose(trans.sum(0), xi_total, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(starts.sum(0), start_total, rtol=1e-12)
    states, logprob = hmm_lanes.viterbi_lanes_jit(
        log_b, offsets, groups, np.log(startprob), np.log(transmat)
    )
    for s in range(len(LENGTHS)):
        a, b = offsets[s], offsets[s + 1]
        path, lp = reference_viterbi(log_b[a:b], startprob, transmat)
        np.testing.assert_array_equal(states[a:b], path)
        assert logprob[s] == pytest.approx(lp, rel=1e-12)


@pytest.mark.parametrize("K", [1, 2, 4, 8, 9])
def test_lanes_equal_the_one_sequence_kernels(K):
    """Many sequences (not a multiple of the lanes), group by group: the same partial
    sums to 1e-10, the same Viterbi paths and sums exactly."""
    lengths = np.random.default_rng(K).integers(1, 60, size=203)
    rng, log_b, offsets, startprob, transmat = _problem(K, lengths, 10 + K)
    groups = sequence_groups(offsets)
    scaled, shift = scale_emissions.jit(log_b)
    w = rng.uniform(0.0, 2.0, size=len(lengths))
    args = (scaled, shift, offsets, groups, startprob, transmat, w)
    ours = hmm_lanes.forward_backward_lanes_jit(*args, np.empty(scaled.shape))
    theirs = hmm.forward_backward_into_jit(*args, np.empty(scaled.shape))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        hmm_lanes.forward_loglik_lanes_jit(*args[:-1]),
        hmm.forward_loglik_scaled_jit(*args[:-1]),
        rtol=1e-12,
    )
    log_b[offsets[5] : offsets[9]] = 0.0  # identical emissions: ties
    vit = (log_b, offsets, groups, np.log(startprob), np.log(transmat))
    s1, lp1 = hmm_lanes.viterbi_lanes_jit(*vit)
    s2, lp2 = hmm.viterbi_jit(*vit)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(lp1, lp2)


def test_lanes_impossible_sequences_leave_their_neighbours_alone():
    rng, log_b, offsets, startprob, transmat = _problem(3, LENGTHS, 5)
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    log_b[offsets[3], 0] = -np.inf  # sequence 3 cannot start
    log_b[offsets[8] + 10, :] = -np.inf  # sequence 8 dies in its middle
    groups = sequence_groups(offsets)
    scaled, shift = scale_emissions.jit(log_b)
    w = np.ones(len(LENGTHS))
    args = (scaled, shift, offsets, groups, startprob, transmat, w)
    post, starts, trans, ll = hmm_lanes.forward_backward_lanes_jit(*args, np.empty(scaled.shape))
    ref = hmm.forward_backward_into_jit(*args, np.empty(scaled.shape))
    assert ll[3] == -np.inf and ll[8] == -np.inf
    assert np.isfinite(np.delete(ll, [3, 8])).all()
    np.testing.assert_array_equal(np.isnan(post), np.isnan(ref[0]))
    np.testing.assert_allclose(post, ref[0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(starts, ref[1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(trans, ref[2], rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(
        hmm_lanes.forward_loglik_lanes_jit(*args[:-1]) == -np.inf, ll == -np.inf
    )


def test_lanes_do_not_depend_on_the_number_of_threads():
    import numba

    lengths = np.random.default_rng(0).integers(1, 50, size=700)
    rng, log_b, offsets, startprob, transmat = _problem(5, lengths, 3)
    groups = sequence_groups(offsets)
    scaled, shift = scale_emissions.jit(log_b)
    args = (scaled, shift, offsets, groups, startprob, transmat, np.ones(len(lengths)))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = hmm_lanes.forward_backward_lanes_jit(*args, np.empty(scaled.shape))
        numba.set_num_threads(before)
        many = hmm_lanes.forward_backward_lanes_jit(*args, np.empty(scaled.shape))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_public_kernels_choose_lanes_by_the_lengths():
    many = np.arange(0, 101 * 20, 20, dtype=np.int64)  # 100 sequences of 20 rows
    assert hmm._use_lanes(many, sequence_groups(many))
    two = np.array([0, 50, 100], dtype=np.int64)
    assert not hmm._use_lanes(two, sequence_groups(two))
    long = np.array([0, 5, 10, 15, 15 + hmm.LONG_SEQUENCE], dtype=np.int64)
    assert not hmm._use_lanes(long, sequence_groups(long))
    # one sequence holds most rows: its lane would run alone, slower than one sequence
    skewed = np.concatenate(([0], np.cumsum([3000] + [10] * 20))).astype(np.int64)
    assert not hmm._use_lanes(skewed, sequence_groups(skewed))
    rng, log_b, offsets, startprob, transmat = _problem(3, [20] * 100, 7)
    groups = sequence_groups(offsets)
    scaled, shift = scale_emissions.jit(log_b)
    w = np.ones(100)
    a = hmm.forward_backward_into.jit(
        scaled, shift, offsets, groups, startprob, transmat, w, np.empty(scaled.shape)
    )
    b = hmm.forward_backward_into_jit(
        scaled, shift, offsets, groups, startprob, transmat, w, np.empty(scaled.shape)
    )
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------
# Diagonal Gaussian emissions fused into the lane recursions
# (latentem.kernels.hmm_diag_gaussian_lanes), against NumPy.


def _gaussian_problem(K, D, lengths, seed):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    means = rng.normal(size=(K, D)) * 3.0
    var = rng.uniform(0.3, 2.0, size=(K, D))
    truth = rng.integers(0, K, size=offsets[-1])
    X = means[truth] + rng.normal(size=(offsets[-1], D)) * np.sqrt(var[truth])
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    return X, offsets, means, var, startprob, transmat


def _gaussian_log_b(X, means, var):
    """Diagonal Gaussian log-densities (n, K), plainly."""
    sq = ((X[:, None, :] - means[None]) ** 2 / var[None]).sum(axis=-1)
    return -0.5 * (np.log(2 * np.pi * var).sum(axis=1)[None, :] + sq)


def _columns(means, var):
    from latentem.kernels.hmm_diag_gaussian_lanes import diag_columns

    inv_std = 1.0 / np.sqrt(var)
    logc = np.log(inv_std).sum(axis=1) - 0.5 * means.shape[1] * np.log(2 * np.pi)
    return diag_columns(means, inv_std, logc)


@pytest.mark.parametrize("K", [1, 2, 3, 8, 10])
@pytest.mark.parametrize("D", [1, 3])
@pytest.mark.parametrize("max_groups", [64, 5])
def test_fused_gaussian_lanes_match_the_reference(K, D, max_groups):
    from latentem.kernels import hmm_diag_gaussian_lanes as fused

    X, offsets, means, var, startprob, transmat = _gaussian_problem(K, D, LENGTHS, K + 10 * D)
    groups = sequence_groups(offsets, max_groups)
    cols = _columns(means, var)
    log_b = _gaussian_log_b(X, means, var)
    ll = fused.diag_gaussian_loglik_lanes(X, cols, offsets, groups, startprob, transmat)
    states, logprob = fused.diag_gaussian_viterbi_lanes(
        X, cols, offsets, groups, np.log(startprob), np.log(transmat)
    )
    for s in range(len(LENGTHS)):
        a, b = offsets[s], offsets[s + 1]
        assert ll[s] == pytest.approx(
            reference_forward_backward(log_b[a:b], startprob, transmat)[2], rel=1e-12
        )
        path, lp = reference_viterbi(log_b[a:b], startprob, transmat)
        np.testing.assert_array_equal(states[a:b], path)
        assert logprob[s] == pytest.approx(lp, rel=1e-12)


@pytest.mark.parametrize("K", [2, 4, 9])
def test_fused_gaussian_lanes_equal_the_unfused_kernels(K):
    """Many ragged sequences: the log-likelihoods of the scaled lane kernels to 1e-12,
    the same Viterbi paths and log-probabilities."""
    from latentem.kernels import hmm_diag_gaussian_lanes as fused

    lengths = np.random.default_rng(K).integers(1, 60, size=203)
    X, offsets, means, var, startprob, transmat = _gaussian_problem(K, 2, lengths, 20 + K)
    groups = sequence_groups(offsets)
    cols = _columns(means, var)
    log_b = _gaussian_log_b(X, means, var)
    scaled, shift = scale_emissions.jit(log_b)
    np.testing.assert_allclose(
        fused.diag_gaussian_loglik_lanes(X, cols, offsets, groups, startprob, transmat),
        hmm_lanes.forward_loglik_lanes_jit(scaled, shift, offsets, groups, startprob, transmat),
        rtol=1e-12,
    )
    logs = (np.log(startprob), np.log(transmat))
    s1, lp1 = fused.diag_gaussian_viterbi_lanes(X, cols, offsets, groups, *logs)
    s2, lp2 = hmm_lanes.viterbi_lanes_jit(log_b, offsets, groups, *logs)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(lp1, lp2, rtol=1e-12)


def test_fused_gaussian_viterbi_ties_go_to_the_lowest_state():
    """States 1 and 2 are the same Gaussian with mirrored transitions: every path
    through one has a twin through the other, and the lower state wins, as in the
    reference (np.argmax) and hmmlearn."""
    from latentem.kernels import hmm_diag_gaussian_lanes as fused

    X, offsets, means, var, startprob, _ = _gaussian_problem(4, 1, LENGTHS, 3)
    means[2], var[2] = means[1], var[1]
    startprob = np.array([0.1, 0.3, 0.3, 0.3])
    transmat = np.array(
        [[0.4, 0.2, 0.2, 0.2], [0.1, 0.5, 0.3, 0.1], [0.1, 0.3, 0.5, 0.1], [0.2, 0.2, 0.2, 0.4]]
    )
    groups = sequence_groups(offsets)
    states, logprob = fused.diag_gaussian_viterbi_lanes(
        X, _columns(means, var), offsets, groups, np.log(startprob), np.log(transmat)
    )
    log_b = _gaussian_log_b(X, means, var)
    assert (states != 2).all() and (states == 1).any()
    for s in range(len(LENGTHS)):
        a, b = offsets[s], offsets[s + 1]
        path, lp = reference_viterbi(log_b[a:b], startprob, transmat)
        np.testing.assert_array_equal(states[a:b], path)
        assert logprob[s] == pytest.approx(lp, rel=1e-12)


def test_fused_gaussian_lanes_tiny_and_impossible_normalisers():
    """A step whose normaliser is below 1e-290 (its log taken alone) and one where the
    only reachable state's density is flushed to zero (the sequence is impossible, as
    in the unfused kernels); their neighbours are untouched."""
    from latentem.kernels import hmm_diag_gaussian_lanes as fused

    lengths = [5, 3, 4, 6, 2, 3, 1, 4, 5, 3]
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(offsets[-1], 1))
    X[offsets[2] + 1 : offsets[3]] = 60.0  # sequence 2 jumps to state 1, through 1e-300
    X[offsets[5] + 1] = 60.0
    means, var = np.array([[0.0], [60.0]]), np.ones((2, 1))
    startprob = np.array([1.0, 0.0])
    groups = sequence_groups(offsets)
    cols = _columns(means, var)
    log_b = _gaussian_log_b(X, means, var)
    rare = np.array([[1.0 - 1e-300, 1e-300], [0.5, 0.5]])
    ll = fused.diag_gaussian_loglik_lanes(X, cols, offsets, groups, startprob, rare)
    for s in range(len(lengths)):
        a, b = offsets[s], offsets[s + 1]
        ref = reference_forward_backward(log_b[a:b], startprob, rare)[2]
        assert ll[s] == pytest.approx(ref, rel=1e-12)
    never = np.array([[1.0, 0.0], [0.5, 0.5]])  # state 1 unreachable: 60 is impossible
    ll = fused.diag_gaussian_loglik_lanes(X, cols, offsets, groups, startprob, never)
    scaled, shift = scale_emissions.jit(log_b)
    unfused = hmm_lanes.forward_loglik_lanes_jit(scaled, shift, offsets, groups, startprob, never)
    assert ll[2] == -np.inf and ll[5] == -np.inf
    np.testing.assert_array_equal(ll == -np.inf, unfused == -np.inf)
    np.testing.assert_allclose(np.delete(ll, [2, 5]), np.delete(unfused, [2, 5]), rtol=1e-12)
