// works_at_as_known: where alice worked at valid time $t, as the service believed at $known_at
MATCH (a:Entity {ns: $ns, name: 'alice'})-[r:FACT]->(b:Entity)
WHERE r.relation = 'works_at'
  AND r.sys_from <= $known_at AND $known_at < r.sys_to
  AND r.valid_from <= $t AND $t < r.valid_to
RETURN b.name AS employer, r.version AS version, r.edge_id AS edge
ORDER BY edge
