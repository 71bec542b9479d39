// scan_subject_current: the versions of a small subject valid at $t in current belief, read from the subject's index prefix without time keys (one seek instead of ~40); n counts the versions scanned, at most $limit: when n = $limit the subject may have more and query_current answers instead
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       [x IN scanned WHERE x.sys_to = $open AND x.valid_from <= $t AND $t < x.valid_to | properties(x)] AS v
