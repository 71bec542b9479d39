// fact_closed_by_src: versions of a subject, bucketed by system-time fork key
CREATE INDEX fact_closed_by_src IF NOT EXISTS FOR ()-[r:FACT]-() ON (r.ns, r.src, r.sfork)
