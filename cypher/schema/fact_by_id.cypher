// fact_by_id: the current version of an edge id (sys_to = open)
CREATE INDEX fact_by_id IF NOT EXISTS FOR ()-[r:FACT]-() ON (r.ns, r.edge_id, r.sys_to)
