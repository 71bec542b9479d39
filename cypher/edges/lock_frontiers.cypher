// lock_frontiers: take (creating if needed) the Frontier of each functional (subject, relation) a write touches, and return its latest valid_from and the id of the version starting there (null: not known); writing it first makes concurrent writers of one subject take turns
UNWIND $pairs AS p
MERGE (f:Frontier {ns: $ns, src: p.src, relation: p.relation})
ON MATCH SET f.valid_from = f.valid_from
RETURN f.src AS src, f.relation AS relation, f.valid_from AS valid_from, f.edge_id AS edge_id
