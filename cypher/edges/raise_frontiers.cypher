// raise_frontiers: record the latest valid_from stated for each functional (subject, relation); it only grows (MERGE finds the node lock_frontiers made, through the index)
UNWIND $pairs AS p
MERGE (f:Frontier {ns: $ns, src: p.src, relation: p.relation})
SET f.valid_from = CASE WHEN f.valid_from IS NULL OR f.valid_from < p.valid_from
                        THEN p.valid_from ELSE f.valid_from END
RETURN count(f) AS raised
