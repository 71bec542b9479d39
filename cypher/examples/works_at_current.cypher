// works_at_current: where alice worked at valid time $t, as the service believes now
MATCH (a:Entity {ns: $ns, name: 'alice'})-[r:FACT]->(b:Entity)
WHERE r.relation = 'works_at'
  AND r.sys_to = 9223372036854775807
  AND r.valid_from <= $t AND $t < r.valid_to
RETURN b.name AS employer, r.valid_from AS since, r.edge_id AS edge
ORDER BY since
