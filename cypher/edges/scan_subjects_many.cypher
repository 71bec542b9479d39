// scan_subjects_many: the versions of several subjects that answer any of their questions ($asked maps each subject to [t, known_at] pairs, known_at null for current belief), read from their index prefixes without time keys (one seek per subject), each as a list in the field order of kg.temporal.Version; n counts the versions scanned, at most $limit, and when the limit is reached srcs names the subject of each scanned version, as in scan_subjects_current
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
WITH collect(r) AS scanned
RETURN size(scanned) AS n,
       CASE WHEN size(scanned) = $limit THEN [x IN scanned | x.src] ELSE [] END AS srcs,
       [x IN scanned WHERE size([a IN $asked[x.src] WHERE x.valid_from <= a[0] AND a[0] < x.valid_to
                                 AND (a[1] IS NULL AND x.sys_to = $open
                                      OR x.sys_from <= a[1] AND a[1] < x.sys_to)]) > 0 |
        [x.edge_id, x.version, x.src, x.dst, x.relation, x.weight, x.attributes, x.valid_from, x.valid_to,
         x.sys_from, x.sys_to, x.created_at, x.content_hash, x.invalidated_by]] AS v
