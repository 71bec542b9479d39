// scan_subjects_current: edges of several subjects valid at $t in current belief, read from their index prefixes without time keys (one seek per subject); n counts the versions scanned, at most $limit, and when the limit is reached srcs names the subject of each scanned version, so the caller can tell which subject is too large to scan
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       CASE WHEN size(scanned) = $limit THEN [x IN scanned | x.src] ELSE [] END AS srcs,
       [x IN scanned WHERE x.sys_to = $open AND x.valid_from <= $t AND $t < x.valid_to |
        {src: x.src, dst: x.dst, relation: x.relation, weight: x.weight,
         valid_from: x.valid_from, edge_id: x.edge_id}] AS v
