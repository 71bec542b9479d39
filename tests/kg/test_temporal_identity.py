"""The content hash is stored with every version: its text must stay canonical JSON, byte for byte.

Ingest builds that text by hand for speed; these tests hold it to the definition
(``canonical_json`` of the stated fields), so re-ingesting data stored by an
earlier release still finds it unchanged.  Pure: no server.
"""

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from kg.models import StatedEdge, parse
from kg.temporal import NewEdge, canonical_json

names = st.text(min_size=1, max_size=30)  # quotes, backslashes, control characters, unicode
times = st.integers(min_value=-(2**62), max_value=2**62)
weights = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text()
                           | st.floats(allow_nan=False, allow_infinity=False),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)


@given(names, names, names, weights, st.dictionaries(st.text(), json_values, max_size=4), times,
       st.none() | times)
def test_content_hash_is_sha256_of_the_canonical_json_of_the_stated_fields(src, dst, relation, weight,
                                                                           attributes, valid_at, invalid_at):
    text = canonical_json(attributes)
    edge = NewEdge("id", src, dst, relation, weight, text, valid_at, invalid_at, 0)
    canonical = canonical_json([src, dst, relation, weight, text, valid_at, invalid_at])
    assert edge._content_json() == canonical
    assert edge.content_hash == hashlib.sha256(canonical.encode()).hexdigest()[:32]


@given(st.dictionaries(st.text(), json_values, max_size=4))
def test_attributes_are_kept_as_their_canonical_json(attributes):
    stated = parse(StatedEdge, {"id": "i", "src": "s", "dst": "d", "valid_at": 0, "attributes": attributes})
    assert stated.attributes == canonical_json(attributes)


def test_created_at_and_id_are_not_content():
    a = NewEdge("a", "s", "d", "r", 1.0, "{}", 5, None, created_at=1)
    b = NewEdge("b", "s", "d", "r", 1.0, "{}", 5, None, created_at=2)
    assert a.content_hash == b.content_hash
    assert a.content_hash != NewEdge("a", "s", "d", "r", 1.0, "{}", 6, None, 1).content_hash
