// current_by_ids: the current version of each listed edge id, each as a list in the field order of kg.temporal.Version, all in one row (a record per version cost the client several times the server's time); unsettled names the ids whose versions hold no or several current ones (read halfway through another transaction's commit)
MATCH ()-[r:FACT]->()
WHERE r.ns = $ns AND r.edge_id IN $ids AND r.version IS NOT NULL
WITH r.edge_id AS id, [x IN collect(r) WHERE x.sys_to = $open] AS heads
WITH id, size(heads) AS n, heads[0] AS h
RETURN collect(CASE WHEN n = 1 THEN [h.edge_id, h.version, h.src, h.dst, h.relation, h.weight, h.attributes,
                                      h.valid_from, h.valid_to, h.sys_from, h.sys_to, h.created_at,
                                      h.content_hash, h.invalidated_by] END) AS v,
       collect(CASE WHEN n <> 1 THEN id END) AS unsettled
