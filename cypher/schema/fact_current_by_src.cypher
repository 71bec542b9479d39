// fact_current_by_src: current versions of a subject, bucketed by valid-time fork key
CREATE INDEX fact_current_by_src IF NOT EXISTS FOR ()-[r:FACT]-() ON (r.ns, r.src, r.sys_to, r.vfork)
