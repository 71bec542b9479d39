// raise_frontiers: record each functional (subject, relation)'s latest current valid_from and the id of the version starting there (null when another version reaches past it); exact values replace the Frontier, others only move it forward (MERGE finds the node lock_frontiers made, through the index)
UNWIND $pairs AS p
MERGE (f:Frontier {ns: $ns, src: p.src, relation: p.relation})
WITH f, p
WHERE p.exact OR f.valid_from IS NULL OR f.valid_from <= p.valid_from
SET f.valid_from = p.valid_from, f.edge_id = p.edge_id
RETURN count(f) AS raised
