// fact_version_key: one FACT relationship per (namespace, edge id, version)
CREATE CONSTRAINT fact_version_key IF NOT EXISTS FOR ()-[r:FACT]-() REQUIRE (r.ns, r.edge_id, r.version) IS UNIQUE
