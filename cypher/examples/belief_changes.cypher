// belief_changes: every version of alice's facts with both intervals, oldest belief first
MATCH (a:Entity {ns: $ns, name: 'alice'})-[r:FACT]->(b:Entity)
RETURN r.edge_id AS edge, r.version AS version, b.name AS object,
       r.valid_from AS valid_from, r.valid_to AS valid_to,
       r.sys_from AS believed_from, r.sys_to AS believed_to,
       r.invalidated_by AS invalidated_by
ORDER BY believed_from, edge, version
