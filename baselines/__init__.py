"""Alignment methods that produce models: DPO (TRL), direction subtraction, neuron ablation."""
