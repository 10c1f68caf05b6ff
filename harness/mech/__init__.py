"""Mechanistic tools: neuron access, hooks, the toxicity probe, value vectors, weight edits, capture."""
