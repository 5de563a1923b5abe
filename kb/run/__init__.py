"""Running tests: the process layer (:mod:`kb.run.command`), the IntegrationTestOrchestrator
(:mod:`kb.run.orchestrate`: test commands, targeted re-runs, recorded orders), progressive isolation as a
pure search (:mod:`kb.run.isolate`) and through real runs (:mod:`kb.run.investigate`), exact orders inside
pytest (:mod:`kb.run.ordered` and its plugin :mod:`kb.run.order_plugin`, standard library and pytest only,
so it loads in any test environment), and the verdict's diagnosis (:mod:`kb.run.isolation_report`)."""
