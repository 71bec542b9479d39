// fact_by_src_time: versions of a subject by interval key; unique because it ends in the version key, and ArcadeDB maintains unique composite indexes several times faster than plain ones
CREATE CONSTRAINT fact_by_src_time IF NOT EXISTS FOR ()-[r:FACT]-() REQUIRE (r.ns, r.src, r.tkey, r.edge_id, r.version) IS UNIQUE
