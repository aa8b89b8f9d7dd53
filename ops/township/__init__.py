"""A synthetic township: a seeded generator of what agencies record, a simulated year through
the real engine and scheduler, and an invariant checker written from DESIGN.md (issue 11).

Everything here is fictional: pseudonyms, invented ID-like numbers never valid, the demo
district's invented places.
"""
