// query_subjects_current: current edges leaving any of the given subjects that are valid at $t, looked up by time keys (one seek per subject and key: for subjects too large to scan); the time filters run after the index lookup, as in query_current; the index hint keeps Neo4j on the subject index (by statistics it chose the (ns, edge_id, version) one and read the whole namespace; ArcadeDB ignores the hint)
MATCH ()-[r:FACT]->()
USING INDEX r:FACT(ns, src, tkey, edge_id, version)
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IN $keys AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r
WHERE r.sys_to = $open AND r.valid_from <= $t AND $t < r.valid_to
RETURN r.src AS src, r.dst AS dst, r.relation AS relation, r.weight AS weight,
       r.valid_from AS valid_from, r.edge_id AS edge_id
ORDER BY edge_id
LIMIT $limit
