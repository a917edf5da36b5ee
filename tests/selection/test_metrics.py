"""Golden values from the worked example of docs/method.md, the baselines, and top-k edge cases."""

import numpy as np
import pytest

from selfplay.selection.metrics import METRICS, MetricParams, resolve_k, score, top_k, zscore

D_EX = [4, 2, 2, 0]
D_IM = [0.5, -1.5, 0.5, 0.5]
IDS = ["p0", "p1", "p2", "p3"]


def test_zscore_population_std_and_constant_column():
    np.testing.assert_allclose(zscore(D_EX), [1.4142136, 0, 0, -1.4142136], atol=1e-7)
    np.testing.assert_allclose(
        zscore(np.abs(D_IM)), [-0.5773503, 1.7320508, -0.5773503, -0.5773503], atol=1e-7
    )
    assert zscore([3.0, 3.0, 3.0]).tolist() == [0.0, 0.0, 0.0]


def test_worked_example_absolute_variant():
    s = score("alignment_potential", D_EX, D_IM, MetricParams(weight=1.0, implicit_abs=True))
    np.testing.assert_allclose(s, [1.9915638, -1.7320508, 0.5773503, -0.8368633], atol=1e-7)
    assert top_k(s, IDS, 2) == [0, 2]


def test_worked_example_signed_variant():
    s = score("alignment_potential", D_EX, D_IM, MetricParams(weight=1.0, implicit_abs=False))
    np.testing.assert_allclose(s, [0.8368633, 1.7320508, -0.5773503, -1.9915638], atol=1e-7)
    assert top_k(s, IDS, 2) == [1, 0]


def test_weight_scales_the_implicit_term_only():
    s = score("alignment_potential", D_EX, D_IM, MetricParams(weight=2.5))
    np.testing.assert_allclose(s, zscore(D_EX) - 2.5 * zscore(np.abs(D_IM)), atol=1e-12)


def test_baselines_against_hand_values():
    z_ex = np.array([1.4142136, 0, 0, -1.4142136])
    z_abs = np.array([-0.5773503, 1.7320508, -0.5773503, -0.5773503])
    p = MetricParams()
    np.testing.assert_allclose(score("explicit", D_EX, D_IM, p), z_ex, atol=1e-7)
    np.testing.assert_allclose(score("explicit_small", D_EX, D_IM, p), -z_ex, atol=1e-7)
    np.testing.assert_allclose(score("implicit_small", D_EX, D_IM, p), -z_abs, atol=1e-7)
    np.testing.assert_allclose(score("implicit_large", D_EX, D_IM, p), z_abs, atol=1e-7)
    assert top_k(score("explicit", D_EX, D_IM, p), IDS, 2) == [0, 1]  # tie p1/p2 -> smaller id
    assert top_k(score("implicit_large", D_EX, D_IM, p), IDS, 1) == [1]


def test_random_metric_is_seeded():
    a = score("random", D_EX, D_IM, MetricParams(seed=3))
    b = score("random", D_EX, D_IM, MetricParams(seed=3))
    c = score("random", D_EX, D_IM, MetricParams(seed=4))
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


def test_every_metric_is_documented_in_the_config():
    import inspect

    from selfplay.config_doc import field_docs
    from selfplay.schema.selection import SelectionConfig

    doc = field_docs(SelectionConfig)["metric"]
    assert all(name in doc for name in METRICS), inspect.getsource(SelectionConfig)


def test_unknown_metric_names_the_choices_and_the_nearest():
    from selfplay.errors import SelfplayError

    with pytest.raises(SelfplayError, match=r"selection.metric=bogus: unknown \(known: alignment_potential"):
        score("bogus", D_EX, D_IM, MetricParams())
    with pytest.raises(SelfplayError, match="did you mean explicit_small"):
        score("explicit_smal", D_EX, D_IM, MetricParams())


@pytest.mark.parametrize(
    "pool,ratio,count,k",
    [
        (4, 0.5, None, 2),
        (4, None, 0, 0),
        (4, None, 4, 4),
        (4, None, 9, 4),
        (1, 0.4, None, 0),
        (1, 0.5, None, 1),
        (5, 0.5, None, 3),
        (10, 0.4, None, 4),
        (0, 0.5, None, 0),
    ],
)
def test_resolve_k(pool, ratio, count, k):
    assert resolve_k(pool, ratio, count) == k


def test_all_equal_scores_break_ties_by_id_not_position():
    assert top_k([1.0, 1.0, 1.0], ["c", "a", "b"], 2) == [1, 2]
