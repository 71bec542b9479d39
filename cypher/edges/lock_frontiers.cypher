// lock_frontiers: take (creating if needed) the Frontier of each functional (subject, relation) a write touches, and return its latest valid_from and the id of the version starting there (null: not known); writing a fresh $turn token first makes concurrent writers of one subject take turns (a write of a value read in the same statement, like `SET f.x = f.x`, would read it before the lock: stale on Neo4j)
UNWIND $pairs AS p
MERGE (f:Frontier {ns: $ns, src: p.src, relation: p.relation})
SET f.turn = $turn
WITH f
RETURN f.src AS src, f.relation AS relation, f.valid_from AS valid_from, f.edge_id AS edge_id
