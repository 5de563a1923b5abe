"""Running tests: the IntegrationTestOrchestrator (:mod:`kb.run.orchestrate`: test commands, targeted
re-runs, recorded orders), progressive isolation as a pure search (:mod:`kb.run.isolate`), and the pytest
plugin that runs a given order and reports outcomes and state changes (:mod:`kb.run.order_plugin`,
standard library and pytest only, so it loads in any test environment)."""
