import math

from kanva.train.schedule import lr_factor, warmup_steps


def test_warmup_then_cosine_to_zero():
    total, ratio = 100, 0.1
    f = [lr_factor(s, total, ratio) for s in range(total)]
    w = warmup_steps(total, ratio)
    assert w == 10
    assert f[0] > 0  # the first update already moves the weights
    assert all(a < b for a, b in zip(f[:w], f[1:w]))  # warmup rises
    assert math.isclose(f[w], 1.0)
    assert all(a >= b for a, b in zip(f[w:], f[w + 1 :]))  # cosine falls
    assert f[-1] < 0.01
    mid = w + (total - w) // 2
    assert math.isclose(f[mid], 0.5, abs_tol=0.02)


def test_no_warmup_and_constant():
    assert lr_factor(0, 10, 0.0) == 1.0
    assert [lr_factor(s, 10, 0.2, "constant") for s in range(2, 10)] == [1.0] * 8
