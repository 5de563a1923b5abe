"""Knowledge that fills itself: releases fetched into a cache, breaking changes mined from them with
griffe, learned rows stored with provenance (DESIGN §10)."""
