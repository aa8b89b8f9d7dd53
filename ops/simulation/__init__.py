"""A synthetic township: a seeded generator of what agencies record, a simulated year through
the real engine and scheduler, and an invariant checker written from DESIGN.md
(it shares no code with the engine it checks).

Everything here is fictional: pseudonyms, invented ID-like numbers never valid, the demo
district's invented places.
"""
