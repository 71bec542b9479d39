// query_subject_many: the versions of one large subject that answer any of its $questions ([t, known_at] pairs, known_at null for current belief), looked up by the union of the questions' time keys (as query_current and query_known_at for one question), each as a list in the field order of kg.temporal.Version; the question filter runs after the index lookup (WITH), as in query_current
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src = $src AND r.tkey IN $keys AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r
WHERE size([a IN $questions WHERE r.valid_from <= a[0] AND a[0] < r.valid_to
            AND (a[1] IS NULL AND r.sys_to = $open OR r.sys_from <= a[1] AND a[1] < r.sys_to)]) > 0
RETURN [r.edge_id, r.version, r.src, r.dst, r.relation, r.weight, r.attributes, r.valid_from, r.valid_to,
        r.sys_from, r.sys_to, r.created_at, r.content_hash, r.invalidated_by] AS v
