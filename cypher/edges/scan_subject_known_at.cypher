// scan_subject_known_at: the versions of a small subject valid at $t as believed at $known_at, read from the subject's index prefix without time keys (one seek instead of ~80); n counts the versions scanned, at most $limit: when n = $limit the subject may have more and query_known_at answers instead
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       [x IN scanned WHERE x.sys_from <= $known_at AND $known_at < x.sys_to
                       AND x.valid_from <= $t AND $t < x.valid_to | properties(x)] AS v
