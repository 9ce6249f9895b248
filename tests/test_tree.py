import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from latentem import tree


def make_tree(a, b, c):
    return {"counts": a, "pair": (b, [c, 2.0])}


def test_add_scale_zeros_keep_structure_and_inputs():
    a = make_tree(np.ones(3), np.arange(4.0), 1.5)
    b = make_tree(np.full(3, 2.0), np.ones(4), 0.5)
    a_before = tree.map(np.copy, a)
    total = tree.add(a, b)
    np.testing.assert_array_equal(total["counts"], np.full(3, 3.0))
    assert total["pair"][1][0] == 2.0 and total["pair"][1][1] == 4.0
    assert isinstance(total["pair"], tuple) and isinstance(total["pair"][1], list)
    assert tree.allclose(a, a_before), "add must not modify its inputs"
    half = tree.scale(total, 0.5)
    np.testing.assert_array_equal(half["pair"][0], (np.arange(4.0) + 1) / 2)
    zeros = tree.zeros_like(a)
    assert all(np.all(leaf == 0) for leaf in tree.leaves(zeros))
    assert tree.leaves(zeros)[1].shape == (4,)


def test_sum_is_in_order_and_does_not_alias():
    parts = [make_tree(np.full(2, float(i)), np.ones(1), 1.0) for i in range(5)]
    total = tree.sum(parts)
    np.testing.assert_array_equal(total["counts"], [10.0, 10.0])
    total["counts"][0] = -1
    assert parts[0]["counts"][0] == 0.0
    with pytest.raises(ValueError, match="empty"):
        tree.sum([])


def test_mismatched_trees_raise():
    with pytest.raises(ValueError, match="dict keys"):
        tree.add({"a": 1.0}, {"b": 1.0})
    with pytest.raises(ValueError, match="length"):
        tree.add((1.0, 2.0), (1.0,))


@given(hnp.arrays(np.float64, st.integers(2, 50), elements=st.floats(-1e6, 1e6)), st.data())
def test_sum_of_split_equals_whole(x, data):
    cut = data.draw(st.integers(1, len(x) - 1))

    def stats(v):
        return {"n": float(len(v)), "s": v.sum(keepdims=True), "ss": (v * v).sum(keepdims=True)}

    assert tree.allclose(tree.add(stats(x[:cut]), stats(x[cut:])), stats(x), rtol=1e-9, atol=1e-3)
