// frontier_key: one Frontier node per (namespace, subject, functional relation)
CREATE CONSTRAINT frontier_key IF NOT EXISTS FOR (f:Frontier) REQUIRE (f.ns, f.src, f.relation) IS UNIQUE
