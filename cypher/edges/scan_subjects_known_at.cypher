// scan_subjects_known_at: edges of several subjects valid at $t as believed at $known_at, read from their index prefixes without time keys (one seek per subject); n and srcs as in scan_subjects_current
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       CASE WHEN size(scanned) = $limit THEN [x IN scanned | x.src] ELSE [] END AS srcs,
       [x IN scanned WHERE x.sys_from <= $known_at AND $known_at < x.sys_to
                       AND x.valid_from <= $t AND $t < x.valid_to |
        {src: x.src, dst: x.dst, relation: x.relation, weight: x.weight,
         valid_from: x.valid_from, edge_id: x.edge_id}] AS v
