// versions_of_subjects: every version of the given subjects, read from their index prefixes without time keys (one seek per subject), at most $limit: query_at_many answers each question from its subject's versions, and a read that fills $limit names the subjects too large to read whole
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.src IN $srcs AND r.tkey IS NOT NULL AND r.edge_id IS NOT NULL AND r.version IS NOT NULL
WITH r LIMIT $limit
RETURN properties(r) AS v
