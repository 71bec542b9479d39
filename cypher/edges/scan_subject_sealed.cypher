// scan_subject_sealed: the sealed history of a small subject, its versions whose system time starts by $through (what every question with known_at <= $through is answered from), each as a list in the field order of kg.temporal.Version; read by following the subject's Entity node's FACT relationships, not an index keyed by tkey: a concurrent close moves a version's tkey, and an index walk can miss an entry while it moves, which a kept answer must never do; n counts the versions scanned, at most $limit, as in scan_subject_current
MATCH (a:Entity)-[r:FACT]->()
WHERE a.ns = $ns AND a.name = $src AND r.ns = $ns
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       [x IN scanned WHERE x.sys_from <= $through |
        [x.edge_id, x.version, x.src, x.dst, x.relation, x.weight, x.attributes, x.valid_from, x.valid_to,
         x.sys_from, x.sys_to, x.created_at, x.content_hash, x.invalidated_by]] AS v
