import pytest

from kanva.errors import KanvaError
from kanva.quickstart.arms import DEFAULT_ARMS, model_name, parse_arms, parse_seeds


def test_arms_and_seeds_parse_in_canonical_order_and_refuse_bad_names():
    assert parse_arms("evolved, seed") == ["seed", "evolved"]
    assert parse_arms(list(DEFAULT_ARMS)) == list(DEFAULT_ARMS)
    for bad, msg in (("evolved,knowledge", "unknown arm"), ("seed,seed", "twice"), ("", "no arm")):
        with pytest.raises(KanvaError, match=msg):
            parse_arms(bad)
    assert parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,x", "1,1", ""):
        with pytest.raises(KanvaError, match="--seeds"):
            parse_seeds(bad)
    assert model_name("evolved", 0, 0) == "evolved" and model_name("evolved", 2, 0) == "evolved-s2"
