"""The model organism: a small world, its corpus, tokenizer, base model and DPO twin.

Built from code on a CPU in minutes, so that every task of the harness can be run and
tested with a real signal on machines that cannot reach a model hub.
"""
