"""toxbench tasks: elicitation, attribution, ablation, unalignment."""
