// query_current: edges of a subject whose latest version is valid at $t; the time filters follow the index lookup (WITH): ArcadeDB ran `r.sys_to = $open` beside the index keys about 3x slower on hubs
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IN $keys AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r
WHERE r.sys_to = $open AND r.valid_from <= $t AND $t < r.valid_to
RETURN properties(r) AS v
