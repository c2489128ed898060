"""An approved temporary increase counts until its end and not after, in the hot path alone."""

from gateway.hotpath.budgets import compiled, effective


def test_increases_lapse_each_at_their_own_end():
    budget = {
        "id": 7,
        "scope_type": "member",
        "scope_id": 3,
        "metric": "usd",
        "limit": 600,
        "base_limit": 100,
        "increases": [[1000, 200], [2000, 300]],
        "period": "month",
    }
    assert effective(budget, 999)["limit"] == 600
    assert effective(budget, 999) is budget
    assert effective(budget, 1500)["limit"] == 400
    assert effective(budget, 1500) is effective(budget, 1501)  # one variant per limit
    assert compiled(effective(budget, 2500), 1).limit == 100
    assert compiled(budget, 1).limit == 600
    plain = {"id": 8, "limit": 5}
    assert effective(plain, 10**12) is plain
