"""The service as a whole: the composition root (:mod:`service.root`) and the entry points above
the graph (``kg``) and learning (``learn``, ``workers``) packages: the ``kg`` command and the demo."""
