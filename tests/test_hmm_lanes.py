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
