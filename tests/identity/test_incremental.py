from partage.identity.decide import Verdict
from tests.identity.factories import receive, traits, unique_family


def test_two_establishments_one_person(platform, make_establishment):  # type: ignore[no-untyped-def]
    chu, chnv = make_establishment(), make_establishment()
    family = unique_family()
    first = receive(platform, chu, "1001", traits(family))
    first_given = traits(family).given_names[:1]
    second = receive(platform, chnv, "A-9", traits(family.title(), given_names=first_given))
    assert first.verdict is Verdict.new
    assert second.verdict is Verdict.link
    assert second.identity.person_id == first.identity.person_id
